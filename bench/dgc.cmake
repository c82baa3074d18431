# dgc_bench: DGC sampled-threshold selection vs exact nth_element top-k vs one read pass (sum)
# over a ResNet-50-sized gradient (25.6M floats) at density 0.001.
add_executable(dgc_bench ${CMAKE_CURRENT_LIST_DIR}/dgc_bench.cc)
target_link_libraries(dgc_bench PRIVATE terse_dgc nlohmann_json::nlohmann_json terse_flags)
target_compile_options(dgc_bench PRIVATE -O3)
