#include "exit_codes.h"

#include "terse/core/error.h"

namespace terse::cli {

int exit_code_for(const std::exception& error) {
  if (dynamic_cast<const InvalidArgument*>(&error)) return kExitInvalidArgument;
  if (dynamic_cast<const CorruptData*>(&error)) return kExitCorruptData;
  if (dynamic_cast<const NumericalError*>(&error)) return kExitNumerical;
  if (dynamic_cast<const Timeout*>(&error) || dynamic_cast<const CommError*>(&error)) {
    return kExitCommOrTimeout;
  }
  return kExitOther;
}

}  // namespace terse::cli
