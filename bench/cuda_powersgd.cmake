# cuda_powersgd_bench: PowerSGD's GPU passes (terse/kernels/cuda_power_sgd.h) and PowerSgd::run on
# CUDA views for one gradient matrix, against a dense f32 copy of it timed in the same run.
if(TERSE_HAVE_CUDA)
  add_executable(cuda_powersgd_bench ${CMAKE_CURRENT_LIST_DIR}/cuda_powersgd_bench.cc)
  target_link_libraries(cuda_powersgd_bench PRIVATE terse_comm_algorithms terse_kernels
                        CUDA::cudart nlohmann_json::nlohmann_json terse_flags)
endif()
