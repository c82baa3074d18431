# collectives_bench: time per call of every collective algorithm at training-step sizes, the
# calibration points of the cost model (run under mpiexec or bench/shaped-net/run.sh).
add_executable(collectives_bench ${CMAKE_CURRENT_LIST_DIR}/collectives_bench.cc)
target_link_libraries(collectives_bench PRIVATE terse_comm_algorithms nlohmann_json::nlohmann_json
                      terse_flags)
target_compile_options(collectives_bench PRIVATE -O3)
