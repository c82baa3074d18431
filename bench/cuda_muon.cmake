# cuda_muon_bench: Muon's step on CUDA tensors for transformer-sized matrices (4096x4096,
# 4096x11008, 11008x4096 by default), ms per step and the Newton-Schulz products' TFLOP/s, in
# bf16 and f32 iterations, beside one cuBLAS product of the same shape and types.
if(TERSE_HAVE_CUDA)
  add_executable(cuda_muon_bench ${CMAKE_CURRENT_LIST_DIR}/cuda_muon_bench.cc)
  target_link_libraries(cuda_muon_bench PRIVATE terse_optim terse_kernels CUDA::cudart CUDA::cublas
                        nlohmann_json::nlohmann_json terse_flags)
endif()
