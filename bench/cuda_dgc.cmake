# cuda_dgc_bench: DGC's selection and fused step on the GPU (CudaDgcSelector) against the
# SGD-momentum step and a device copy timed in the same run; torch.topk of the same input:
# scripts/torch_topk_cuda_bench.py (scripts/device-check.sh BENCH=1 runs both).
if(TERSE_HAVE_CUDA)
  add_executable(cuda_dgc_bench ${CMAKE_CURRENT_LIST_DIR}/cuda_dgc_bench.cc)
  target_link_libraries(cuda_dgc_bench PRIVATE terse_dgc terse_kernels CUDA::cudart
                        nlohmann_json::nlohmann_json terse_flags)
endif()
