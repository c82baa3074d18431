# cuda_codec_bench: the CUDA compression kernels (terse/kernels/cuda_*_codec.h, cuda_rand_k.h,
# cuda_scatter_add.h) in GB/s of each call's minimal traffic, against the device-to-device copy
# bandwidth measured in the same run.
if(TERSE_HAVE_CUDA)
  add_executable(cuda_codec_bench ${CMAKE_CURRENT_LIST_DIR}/cuda_codec_bench.cc)
  target_link_libraries(cuda_codec_bench PRIVATE terse_kernels CUDA::cudart
                        nlohmann_json::nlohmann_json terse_flags)
endif()
