terse_add_gtest(terse_train_compression_test
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/gradient_compression_test.cc
  LIBS terse_train terse_comm
  PREFIX "unit.train.compression."
  LABELS "unit")
