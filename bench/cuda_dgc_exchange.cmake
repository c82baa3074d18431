# cuda_dgc_exchange_bench: DGC's exchange in DataParallel with CUDA gradients, on the GPU against
# the host mirror, at ResNet-50's gradient size (scripts/device-check.sh BENCH=1 runs it).
if(TERSE_HAVE_CUDA)
  add_executable(cuda_dgc_exchange_bench ${CMAKE_CURRENT_LIST_DIR}/cuda_dgc_exchange_bench.cc)
  target_link_libraries(cuda_dgc_exchange_bench PRIVATE terse_train terse_kernels CUDA::cudart
                        nlohmann_json::nlohmann_json terse_flags)
endif()
