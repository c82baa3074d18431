# compress_bench: encode / decode time of every compressor (typical options) on a
# ResNet-50-sized gradient (25.6M N(0,1) floats), against one read pass and one memcpy.
add_executable(compress_bench ${CMAKE_CURRENT_LIST_DIR}/compress_bench.cc)
target_link_libraries(compress_bench PRIVATE terse_compress nlohmann_json::nlohmann_json
                      terse_flags)
target_compile_options(compress_bench PRIVATE -O3)
