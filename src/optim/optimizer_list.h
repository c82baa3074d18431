// The registered element-wise optimizers, in the order optimizer_names() lists them. Adding
// one: write src/optim/<id>.cc defining make_<id>() (see fused_optimizer.h) and add a line.
// No include guard: optimizer_registry.cc includes this list with its own TERSE_OPTIMIZER.
TERSE_OPTIMIZER(sgd)
TERSE_OPTIMIZER(adam)
TERSE_OPTIMIZER(adamw)
TERSE_OPTIMIZER(lion)
TERSE_OPTIMIZER(adabelief)
TERSE_OPTIMIZER(sgd_sai)
TERSE_OPTIMIZER(adan)
TERSE_OPTIMIZER(exadam)
TERSE_OPTIMIZER(diffgrad)
TERSE_OPTIMIZER(spam)
TERSE_OPTIMIZER(muon)
TERSE_OPTIMIZER(auon)
TERSE_OPTIMIZER(frugal)
