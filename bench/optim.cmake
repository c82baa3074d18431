# optim_bench: CPU optimizer step (SGD-M, Adam, AdamW) against a traffic twin of each optimizer
# (same streams, trivial arithmetic: the roofline of its access pattern), copy bandwidth as
# context and, when libtorch is found, torch::optim of the same sizes in the same binary.
add_executable(optim_bench ${CMAKE_CURRENT_LIST_DIR}/optim_bench.cc)
target_link_libraries(optim_bench PRIVATE terse_optim nlohmann_json::nlohmann_json terse_flags)
# Same code generation as the kernels (-O3, omp simd, target_clones) for the twins and copy loop.
target_compile_options(optim_bench PRIVATE -O3)
if(TERSE_HAVE_OPENMP)
  target_link_libraries(optim_bench PRIVATE OpenMP::OpenMP_CXX)
endif()
if(TERSE_HAVE_TORCH)
  target_link_libraries(optim_bench PRIVATE ${TORCH_LIBRARIES})
  target_compile_definitions(optim_bench PRIVATE TERSE_BENCH_TORCH=1)
endif()
