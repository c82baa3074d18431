# cuda_optim_bench: the CUDA multi-tensor executor's step (terse/kernels/cuda_multi_tensor.h) in
# GB/s of each Rule's traffic, against the device-to-device copy bandwidth measured in the same
# run. torch's fused and foreach AdamW of the same sizes: scripts/torch_optim_cuda_bench.py, run
# in the same device call (scripts/gpu-bench.sh).
if(TERSE_HAVE_CUDA)
  add_executable(cuda_optim_bench ${CMAKE_CURRENT_LIST_DIR}/cuda_optim_bench.cc)
  target_link_libraries(cuda_optim_bench PRIVATE terse_kernels CUDA::cudart
                        nlohmann_json::nlohmann_json terse_flags)
endif()
