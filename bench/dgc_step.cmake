# dgc_step_bench: DGC's whole per-tensor compression (all_finite, DgcMemory::step, encode) over a
# sequence of steps with persistent U and V, per phase, at the wide-mlp's sizes.
add_executable(dgc_step_bench ${CMAKE_CURRENT_LIST_DIR}/dgc_step_bench.cc)
target_link_libraries(dgc_step_bench PRIVATE terse_compress nlohmann_json::nlohmann_json
                      terse_flags)
target_compile_options(dgc_step_bench PRIVATE -O3)
