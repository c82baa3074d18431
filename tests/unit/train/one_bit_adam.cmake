terse_add_gtest(terse_train_one_bit_adam_test
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/one_bit_adam_test.cc
          ${CMAKE_CURRENT_LIST_DIR}/zero_one_adam_test.cc
          ${CMAKE_CURRENT_LIST_DIR}/one_bit_lamb_test.cc
          ${CMAKE_CURRENT_LIST_DIR}/data_parallel_exchange_test.cc
  LIBS terse_train terse_comm
  PREFIX "unit.train.onebit_adam."
  LABELS "unit")
