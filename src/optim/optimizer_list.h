// The registered element-wise optimizers, in the order optimizer_names() lists them. Adding
// one: write src/optim/<id>.cc defining make_<id>() (see fused_optimizer.h) and add a line.
// No include guard: optimizer_registry.cc includes this list with its own TERSE_OPTIMIZER.
TERSE_OPTIMIZER(sgd)
TERSE_OPTIMIZER(adam)
TERSE_OPTIMIZER(adamw)
TERSE_OPTIMIZER(lion)
TERSE_OPTIMIZER(adabelief)
TERSE_OPTIMIZER(lookahead)
