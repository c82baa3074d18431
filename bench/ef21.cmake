# ef21_logreg: the EF21 / EF21-W logistic-regression experiment (experiments/ef21, docs/ef21.md)
# and its test. Lives here because bench/CMakeLists.txt includes every bench/*.cmake.
set(TERSE_EF21_DIR ${CMAKE_CURRENT_LIST_DIR}/../experiments/ef21)
add_library(terse_ef21_experiment STATIC ${TERSE_EF21_DIR}/logreg_problem.cc
                                         ${TERSE_EF21_DIR}/ef21_simulation.cc)
target_include_directories(terse_ef21_experiment PUBLIC ${TERSE_EF21_DIR})
target_link_libraries(terse_ef21_experiment PUBLIC terse_compress terse_data PRIVATE terse_flags)

add_executable(ef21_logreg ${TERSE_EF21_DIR}/ef21_logreg.cc)
target_link_libraries(ef21_logreg PRIVATE terse_ef21_experiment nlohmann_json::nlohmann_json
                                          terse_flags)

if(TERSE_BUILD_TESTS AND COMMAND terse_add_gtest)
  terse_add_gtest(terse_ef21_logreg_test
    SOURCES ${TERSE_EF21_DIR}/ef21_logreg_test.cc
    LIBS terse_ef21_experiment
    PREFIX "experiments.ef21."
    LABELS "unit")
endif()
