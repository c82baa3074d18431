# Checkpoint format, CheckpointStore and MetricsWriter tests (included by CMakeLists.txt here).
terse_add_gtest(terse_train_checkpoint_test
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/checkpoint_test.cc ${CMAKE_CURRENT_LIST_DIR}/metrics_writer_test.cc
  LIBS terse_train nlohmann_json::nlohmann_json
  PREFIX "unit.train.checkpoint."
  LABELS "unit")
target_compile_definitions(terse_train_checkpoint_test PRIVATE
  TERSE_PROJECT_VERSION="${PROJECT_VERSION}")
