terse_add_gtest(terse_train_engine_test
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/bucket_plan_test.cc ${CMAKE_CURRENT_LIST_DIR}/data_parallel_test.cc
  LIBS terse_train terse_comm
  PREFIX "unit.train.engine."
  LABELS "unit")
