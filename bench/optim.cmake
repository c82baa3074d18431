# optim_bench: CPU step of every registered optimizer in GB/s of its spec §19 traffic, against
# the stream-copy bandwidth measured in the same run and a traffic twin of each optimizer's access
# pattern (same streams, trivial arithmetic: its roofline) and, when libtorch is found,
# torch::optim of the same sizes in the same binary. Sources: bench/optim/ (one type each).
add_executable(optim_bench
  ${CMAKE_CURRENT_LIST_DIR}/optim_bench.cc
  ${CMAKE_CURRENT_LIST_DIR}/optim/bench_args.cc
  ${CMAKE_CURRENT_LIST_DIR}/optim/copy_bandwidth.cc
  ${CMAKE_CURRENT_LIST_DIR}/optim/machine.cc
  ${CMAKE_CURRENT_LIST_DIR}/optim/optim_entry.cc
  ${CMAKE_CURRENT_LIST_DIR}/optim/stream_copy.cc)
target_include_directories(optim_bench PRIVATE ${CMAKE_CURRENT_LIST_DIR})
target_link_libraries(optim_bench PRIVATE terse_optim nlohmann_json::nlohmann_json terse_flags)
# Same code generation as the kernels (-O3, omp simd, target_clones) for the twins and copy loop.
target_compile_options(optim_bench PRIVATE -O3)
if(TERSE_HAVE_OPENMP)
  target_link_libraries(optim_bench PRIVATE OpenMP::OpenMP_CXX)
endif()
if(TERSE_HAVE_TORCH)
  target_sources(optim_bench PRIVATE ${CMAKE_CURRENT_LIST_DIR}/optim/torch_step.cc)
  target_link_libraries(optim_bench PRIVATE ${TORCH_LIBRARIES})
  target_compile_definitions(optim_bench PRIVATE TERSE_BENCH_TORCH=1)
endif()
