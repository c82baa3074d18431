#include "terse/torch/optimizer.h"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>
#include <torch/serialize/archive.h>

#include <cstring>

#include "terse/core/check.h"
#include "terse/torch/view_of.h"

namespace terse::torch_adapter {
namespace {

OptimizerOptions& options_of(torch::optim::OptimizerParamGroup& group, size_t g) {
  auto* opts = dynamic_cast<OptimizerOptions*>(&group.options());
  TERSE_CHECK(opts != nullptr, InvalidArgument, "param group ", g,
              " carries options of another optimizer; give it "
              "terse::torch_adapter::OptimizerOptions or none");
  return *opts;
}

}  // namespace

OptimizerOptions::OptimizerOptions(const std::string& spec) : spec_(OptimizerSpec::parse(spec)) {
  const auto it = spec_.options.find("lr");
  // Without an lr in the spec the optimizer's default applies; Optimizer fills it in.
  if (it != spec_.options.end()) lr_ = std::stod(it->second);
}

Optimizer::Optimizer(std::vector<at::Tensor> params, const std::string& spec)
    : Optimizer(std::vector<torch::optim::OptimizerParamGroup>{torch::optim::OptimizerParamGroup(
                    std::move(params))},
                spec) {}

Optimizer::Optimizer(std::vector<torch::optim::OptimizerParamGroup> groups, const std::string& spec)
    : torch::optim::Optimizer(std::move(groups), std::make_unique<OptimizerOptions>(spec)) {
  const OptimizerSpec& base = static_cast<const OptimizerOptions&>(defaults()).spec();
  std::vector<ParamGroup> terse_groups;
  for (size_t g = 0; g < param_groups_.size(); ++g) {
    OptimizerOptions& opts = options_of(param_groups_[g], g);
    TERSE_CHECK(opts.spec().name == base.name, InvalidArgument, "param group ", g,
                " names optimizer '", opts.spec().name, "' but the optimizer is '", base.name,
                "'; use one optimizer for every group");
    ParamGroup pg;
    pg.overrides = opts.spec().options;
    for (const at::Tensor& p : param_groups_[g].params()) {
      const size_t i = params_.size();
      TERSE_CHECK(p.requires_grad(), InvalidArgument, "parameter ", i,
                  " does not require grad; pass only trainable parameters");
      const TensorView value = view_of(p);
      // A buffer of our own: torch may replace or drop .grad() between steps.
      at::Tensor grad = at::zeros_like(p, at::MemoryFormat::Contiguous);
      grads_.push_back(grad);
      params_.push_back(p);
      pg.params.push_back(Param{value, view_of(grad),
                                std::vector<int64_t>(p.sizes().begin(), p.sizes().end()),
                                "param" + std::to_string(i)});
    }
    terse_groups.push_back(std::move(pg));
  }
  OptimizerSpec s = base;
  inner_ = make_optimizer(s, std::move(terse_groups));
  sync_lr_to_groups();
}

void Optimizer::sync_lr_to_groups() {
  for (size_t g = 0; g < param_groups_.size(); ++g) {
    options_of(param_groups_[g], g).set_lr(inner_->lr(g));
  }
}

at::Tensor Optimizer::step(LossClosure closure) {
  at::Tensor loss;
  if (closure) {
    at::AutoGradMode enable_grad(true);
    loss = closure();
  }
  at::NoGradGuard no_grad;
  for (size_t i = 0; i < params_.size(); ++i) {
    const at::Tensor& g = params_[i].grad();
    if (!g.defined()) {
      grads_[i].zero_();
    } else if (!g.is_same(grads_[i])) {
      grads_[i].copy_(g);
    }
  }
  for (size_t g = 0; g < param_groups_.size(); ++g) {
    const double lr = options_of(param_groups_[g], g).get_lr();
    if (lr != inner_->lr(g)) inner_->set_lr(lr, g);
  }
  size_t i = 0;
  for (const auto& group : param_groups_) {
    for (const at::Tensor& p : group.params()) {
      TERSE_CHECK(i < params_.size() && p.is_same(params_[i]) && p.is_contiguous() &&
                      storage_ptr(p) == storage_ptr(params_[i]),
                  InvalidArgument, "parameter ", i,
                  " changed since the optimizer was built (replaced, moved or re-allocated); "
                  "build a new optimizer for the new parameters");
      ++i;
    }
  }
  TERSE_CHECK(i == params_.size(), InvalidArgument, "the param groups hold ", i,
              " parameters but the optimizer was built with ", params_.size(),
              "; build a new optimizer after add_param_group");
  inner_->step();
  return loss;
}

void Optimizer::load_state_dict(const StateDict& state) {
  inner_->load_state_dict(state);
  sync_lr_to_groups();
}

// The state dict as archive entries: "tensors/<key>/{bytes,shape,dtype}", "ints/<key>",
// "floats/<key>", "strings/<key>".
void Optimizer::save(torch::serialize::OutputArchive& archive) const {
  const StateDict sd = inner_->state_dict();
  archive.write("terse_optimizer", c10::IValue(std::string(inner_->name())));
  std::vector<std::string> tensor_keys, int_keys, float_keys, string_keys;
  for (const auto& [key, t] : sd.tensors) {
    tensor_keys.push_back(key);
    at::Tensor bytes = at::empty({static_cast<int64_t>(t.bytes.size())}, at::kByte);
    if (!t.bytes.empty()) std::memcpy(storage_ptr(bytes), t.bytes.data(), t.bytes.size());
    archive.write("tensors/" + key + "/bytes", bytes, /*is_buffer=*/true);
    archive.write("tensors/" + key + "/shape", c10::IValue(c10::List<int64_t>(t.shape)));
    archive.write("tensors/" + key + "/dtype", c10::IValue(static_cast<int64_t>(t.dtype)));
  }
  for (const auto& [key, v] : sd.ints) {
    int_keys.push_back(key);
    archive.write("ints/" + key, c10::IValue(v));
  }
  for (const auto& [key, v] : sd.floats) {
    float_keys.push_back(key);
    archive.write("floats/" + key, c10::IValue(v));
  }
  for (const auto& [key, v] : sd.strings) {
    string_keys.push_back(key);
    archive.write("strings/" + key, c10::IValue(v));
  }
  archive.write("tensor_keys", c10::IValue(c10::List<std::string>(tensor_keys)));
  archive.write("int_keys", c10::IValue(c10::List<std::string>(int_keys)));
  archive.write("float_keys", c10::IValue(c10::List<std::string>(float_keys)));
  archive.write("string_keys", c10::IValue(c10::List<std::string>(string_keys)));
}

void Optimizer::load(torch::serialize::InputArchive& archive) {
  c10::IValue v;
  TERSE_CHECK(archive.try_read("terse_optimizer", v) && v.isString(), CorruptData,
              "the archive holds no terse optimizer state; save it with torch::save of a "
              "terse::torch_adapter::Optimizer");
  TERSE_CHECK(v.toStringRef() == inner_->name(), InvalidArgument, "the archive holds state of '",
              v.toStringRef(), "' but this optimizer is '", inner_->name(),
              "'; load it into the same optimizer");
  const auto keys = [&](const std::string& name) {
    c10::IValue list;
    archive.read(name, list);
    TERSE_CHECK(list.isList(), CorruptData, "archive entry '", name,
                "' is not a list of keys; the file is damaged");
    std::vector<std::string> out;
    for (const c10::IValue& k : list.toListRef()) {
      TERSE_CHECK(k.isString(), CorruptData, "archive entry '", name,
                  "' holds a non-string key; the file is damaged");
      out.push_back(k.toStringRef());
    }
    return out;
  };
  StateDict sd;
  for (const std::string& key : keys("tensor_keys")) {
    StateTensor t;
    at::Tensor bytes;
    archive.read("tensors/" + key + "/bytes", bytes, /*is_buffer=*/true);
    TERSE_CHECK(bytes.scalar_type() == at::kByte && bytes.dim() == 1, CorruptData, "state tensor '",
                key, "' is not a byte vector; the file is damaged");
    bytes = bytes.contiguous();
    t.bytes.resize(static_cast<size_t>(bytes.numel()));
    if (!t.bytes.empty()) std::memcpy(t.bytes.data(), storage_ptr(bytes), t.bytes.size());
    c10::IValue shape, dtype;
    archive.read("tensors/" + key + "/shape", shape);
    archive.read("tensors/" + key + "/dtype", dtype);
    TERSE_CHECK(shape.isIntList() && dtype.isInt(), CorruptData, "state tensor '", key,
                "' has a malformed shape or dtype; the file is damaged");
    const auto shape_list = shape.toIntVector();
    t.shape.assign(shape_list.begin(), shape_list.end());
    const int64_t d = dtype.toInt();
    TERSE_CHECK(d >= 0 && d <= static_cast<int64_t>(DType::kU8), CorruptData, "state tensor '", key,
                "' has dtype code ", d, "; the file is damaged");
    t.dtype = static_cast<DType>(d);
    int64_t shape_numel = 1;
    for (int64_t dim : t.shape) shape_numel *= dim;
    TERSE_CHECK(
        t.bytes.size() % dtype_size(t.dtype) == 0 && (t.shape.empty() || shape_numel == t.numel()),
        CorruptData, "state tensor '", key, "' holds ", t.bytes.size(),
        " bytes, which does not fit its shape and dtype ", dtype_name(t.dtype),
        "; the file is damaged");
    sd.tensors.emplace(key, std::move(t));
  }
  for (const std::string& key : keys("int_keys")) {
    archive.read("ints/" + key, v);
    TERSE_CHECK(v.isInt(), CorruptData, "state int '", key, "' is not an int; file damaged");
    sd.ints[key] = v.toInt();
  }
  for (const std::string& key : keys("float_keys")) {
    archive.read("floats/" + key, v);
    TERSE_CHECK(v.isDouble(), CorruptData, "state float '", key, "' is not a float; file damaged");
    sd.floats[key] = v.toDouble();
  }
  for (const std::string& key : keys("string_keys")) {
    archive.read("strings/" + key, v);
    TERSE_CHECK(v.isString(), CorruptData, "state string '", key,
                "' is not a string; file damaged");
    sd.strings[key] = v.toStringRef();
  }
  load_state_dict(sd);
}

}  // namespace terse::torch_adapter
