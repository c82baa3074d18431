#include "terse/train/checkpoint.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <iterator>
#include <limits>
#include <set>
#include <string_view>
#include <utility>

#include "terse/core/check.h"

namespace terse {
namespace {

using json = nlohmann::json;

constexpr size_t kCrcBytes = 4;

void store_le(uint8_t* p, uint64_t v, int bytes) {
  for (int i = 0; i < bytes; ++i) p[i] = static_cast<uint8_t>(v >> (8 * i));
}

uint64_t load_le(const uint8_t* p, int bytes) {
  uint64_t v = 0;
  for (int i = 0; i < bytes; ++i) v |= uint64_t{p[i]} << (8 * i);
  return v;
}

uint32_t crc32_of(const uint8_t* data, size_t size) {
  uLong crc = crc32(0L, Z_NULL, 0);
  constexpr size_t kChunk = std::numeric_limits<uInt>::max();
  while (size > 0) {
    const size_t n = std::min(size, kChunk);
    crc = crc32(crc, data, static_cast<uInt>(n));
    data += n;
    size -= n;
  }
  return static_cast<uint32_t>(crc);
}

size_t align_up(size_t v) {
  return (v + kCheckpointAlign - 1) / kCheckpointAlign * kCheckpointAlign;
}

// Floats are JSON numbers (shortest round-trip form); JSON has no NaN or Inf, so those are
// spelled as strings.
json float_to_json(double v) {
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  return v;
}

bool dtype_by_name(const std::string& name, DType* out) {
  for (int code = 0; code <= static_cast<int>(DType::kU8); ++code) {
    const auto d = static_cast<DType>(code);
    if (name == dtype_name(d)) {
      *out = d;
      return true;
    }
  }
  return false;
}

// numel of `shape`, or false when a dim is negative or the product overflows int64.
bool shape_numel(const std::vector<int64_t>& shape, int64_t* numel) {
  int64_t n = 1;
  for (int64_t d : shape) {
    if (d < 0) return false;
    if (d != 0 && n > std::numeric_limits<int64_t>::max() / d) return false;
    n *= d;
  }
  *numel = n;
  return true;
}

std::string shape_str(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? "," : "") + std::to_string(shape[i]);
  return s + "]";
}

// Checks the fixed prefix and returns the header length.
size_t check_prefix(const uint8_t* data, size_t size, const std::string& what) {
  TERSE_CHECK(data != nullptr || size == 0, InvalidArgument, "decode_checkpoint for ", what,
              " got a null buffer of ", size, " bytes; pass a valid buffer");
  TERSE_CHECK(size >= kCheckpointPrefixBytes, CorruptData, "checkpoint ", what,
              " is truncated: ", size, " bytes, shorter than its ", kCheckpointPrefixBytes,
              "-byte prefix; it was not written completely: use an older checkpoint");
  TERSE_CHECK(std::memcmp(data, kCheckpointMagic, sizeof kCheckpointMagic) == 0, CorruptData,
              "checkpoint ", what, ": bad magic '",
              std::string(reinterpret_cast<const char*>(data), sizeof kCheckpointMagic),
              "' (expected 'TERSECKP'); this is not a terse checkpoint");
  const uint32_t version = static_cast<uint32_t>(load_le(data + 8, 4));
  TERSE_CHECK(version == kCheckpointVersion, CorruptData, "checkpoint ", what, ": format version ",
              version, " (expected ", kCheckpointVersion, "); ",
              version > kCheckpointVersion ? "it was written by a newer terse: upgrade terse"
                                           : "it is corrupt");
  const uint32_t flags = static_cast<uint32_t>(load_le(data + 12, 4));
  TERSE_CHECK(flags == 0, CorruptData, "checkpoint ", what, ": flags ", flags,
              " (expected 0); it is corrupt or from an incompatible writer");
  const uint64_t header = load_le(data + 16, 8);
  return static_cast<size_t>(std::min<uint64_t>(header, std::numeric_limits<size_t>::max()));
}

json parse_header(const uint8_t* p, size_t n, const std::string& what) {
  json h;
  try {
    h = json::parse(reinterpret_cast<const char*>(p), reinterpret_cast<const char*>(p) + n);
  } catch (const json::exception& e) {
    TERSE_THROW(CorruptData, "checkpoint ", what, ": its ", n, "-byte JSON header does not parse (",
                e.what(), "); the file is corrupt: use an older checkpoint");
  }
  TERSE_CHECK(h.is_object(), CorruptData, "checkpoint ", what, ": JSON header is a ", h.type_name(),
              " (expected an object)");
  TERSE_CHECK(h.contains("meta") && h.at("meta").is_object(), CorruptData, "checkpoint ", what,
              ": JSON header has no object 'meta' (expected one)");
  return h;
}

[[noreturn]] void fail_field(const std::string& what, std::string_view where,
                             const std::string& field, const json& seen, const char* expected) {
  std::string shown = seen.dump();
  if (shown.size() > 80) shown = shown.substr(0, 80) + "...";  // keep messages one line long
  TERSE_THROW(CorruptData, "checkpoint ", what, ": ", where, " field '", field, "' is ", shown,
              " (expected ", expected, "); the file is corrupt");
}

const json& field(const json& obj, const char* key, const std::string& what,
                  std::string_view where) {
  TERSE_CHECK(obj.is_object(), CorruptData, "checkpoint ", what, ": ", where, " is a ",
              obj.type_name(), " (expected an object); the file is corrupt");
  const auto it = obj.find(key);
  TERSE_CHECK(it != obj.end(), CorruptData, "checkpoint ", what, ": ", where, " has no field '",
              key, "'; the file is corrupt");
  return *it;
}

const json& object_field(const json& obj, const char* key, const std::string& what,
                         std::string_view where) {
  const json& v = field(obj, key, what, where);
  if (!v.is_object()) fail_field(what, where, key, v, "an object");
  return v;
}

uint64_t unsigned_field(const json& obj, const char* key, const std::string& what,
                        std::string_view where) {
  const json& v = field(obj, key, what, where);
  if (!v.is_number_unsigned()) fail_field(what, where, key, v, "an unsigned integer");
  return v.get<uint64_t>();
}

void decode_scalars(const json& sec, const std::string& section, const std::string& what,
                    StateDict* sd) {
  const std::string where = "section '" + section + "'";
  for (const auto& [k, v] : object_field(sec, "ints", what, where).items()) {
    if (!v.is_number_integer() ||
        (v.is_number_unsigned() &&
         v.get<uint64_t>() > uint64_t{std::numeric_limits<int64_t>::max()}))
      fail_field(what, where + " int", k, v, "a 64-bit signed integer");
    sd->ints[k] = v.get<int64_t>();
  }
  for (const auto& [k, v] : object_field(sec, "floats", what, where).items()) {
    if (v.is_number()) {
      sd->floats[k] = v.get<double>();
    } else if (v == "nan") {
      sd->floats[k] = std::numeric_limits<double>::quiet_NaN();
    } else if (v == "inf" || v == "-inf") {
      sd->floats[k] = (v == "inf" ? 1 : -1) * std::numeric_limits<double>::infinity();
    } else {
      fail_field(what, where + " float", k, v, "a number, \"nan\", \"inf\" or \"-inf\"");
    }
  }
  for (const auto& [k, v] : object_field(sec, "strings", what, where).items()) {
    if (!v.is_string()) fail_field(what, where + " string", k, v, "a string");
    sd->strings[k] = v.get<std::string>();
  }
}

void check_name(const std::string& kind, const std::string& name) {
  TERSE_CHECK(!name.empty(), InvalidArgument, "encode_checkpoint: a ", kind,
              " name is empty; give every ", kind, " a name");
}

struct Fd {
  int fd = -1;
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
};

std::string errno_text(int err) { return std::strerror(err); }

std::string parent_dir(const std::string& path) {
  const size_t slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

}  // namespace

std::vector<uint8_t> encode_checkpoint(const Checkpoint& ckpt) {
  TERSE_CHECK(ckpt.meta.is_object(), InvalidArgument, "encode_checkpoint: meta is a ",
              ckpt.meta.type_name(), ", expected a JSON object");
  json meta = ckpt.meta;
  if (!meta.contains("terse_version")) meta["terse_version"] = kTerseVersion;
  json entries = json::array();
  json sections = json::object();
  size_t payload = 0;
  for (const auto& [section, sd] : ckpt.sections) {
    check_name("section", section);
    json floats = json::object();
    for (const auto& [k, v] : sd.floats) floats[k] = float_to_json(v);
    sections[section] = {{"ints", sd.ints}, {"floats", floats}, {"strings", sd.strings}};
    for (const auto& [name, t] : sd.tensors) {
      check_name("tensor", name);
      int64_t numel = 0;
      TERSE_CHECK(shape_numel(t.shape, &numel) &&
                      static_cast<uint64_t>(numel) * dtype_size(t.dtype) == t.bytes.size(),
                  InvalidArgument, "encode_checkpoint: tensor '", section, "/", name,
                  "' has shape ", shape_str(t.shape), " of ", dtype_name(t.dtype), " but ",
                  t.bytes.size(), " bytes; set its shape to match its bytes");
      payload = align_up(payload);
      entries.push_back({{"section", section},
                         {"name", name},
                         {"dtype", dtype_name(t.dtype)},
                         {"shape", t.shape},
                         {"offset", payload},
                         {"nbytes", t.bytes.size()}});
      payload += t.bytes.size();
    }
  }
  const json header = {{"format", "terse-checkpoint"},
                       {"meta", meta},
                       {"sections", sections},
                       {"entries", entries},
                       {"payload_bytes", payload}};
  std::string text;
  try {
    text = header.dump();
  } catch (const json::exception& e) {
    TERSE_THROW(InvalidArgument, "encode_checkpoint: metadata or a name is not valid UTF-8 (",
                e.what(), "); use UTF-8 strings");
  }
  std::vector<uint8_t> out(kCheckpointPrefixBytes + text.size() + payload + kCrcBytes, 0);
  std::copy(std::begin(kCheckpointMagic), std::end(kCheckpointMagic), out.begin());
  store_le(out.data() + 8, kCheckpointVersion, 4);
  store_le(out.data() + 12, 0, 4);
  store_le(out.data() + 16, text.size(), 8);
  std::memcpy(out.data() + kCheckpointPrefixBytes, text.data(), text.size());
  uint8_t* base = out.data() + kCheckpointPrefixBytes + text.size();
  size_t i = 0;
  for (const auto& [section, sd] : ckpt.sections) {
    for (const auto& [name, t] : sd.tensors) {
      const auto offset = entries[i++]["offset"].get<size_t>();
      if (!t.bytes.empty()) std::memcpy(base + offset, t.bytes.data(), t.bytes.size());
    }
  }
  const size_t body = out.size() - kCrcBytes;
  store_le(out.data() + body, crc32_of(out.data(), body), 4);
  return out;
}

Checkpoint decode_checkpoint(const uint8_t* data, size_t size, const std::string& what) {
  const size_t header_bytes = check_prefix(data, size, what);
  const bool fits = size >= kCheckpointPrefixBytes + kCrcBytes &&
                    header_bytes <= size - kCheckpointPrefixBytes - kCrcBytes;
  TERSE_CHECK(fits, CorruptData, "checkpoint ", what, ": header length ", header_bytes,
              " does not fit in the ", size,
              "-byte file; the file is truncated or corrupt: use an older checkpoint");
  const size_t body = size - kCrcBytes;
  const auto stored_crc = static_cast<uint32_t>(load_le(data + body, 4));
  const uint32_t crc = crc32_of(data, body);
  TERSE_CHECK(stored_crc == crc, CorruptData, "checkpoint ", what, ": CRC-32 mismatch (stored 0x",
              std::hex, stored_crc, ", computed 0x", crc, std::dec,
              "); the file is damaged or truncated: use an older checkpoint");
  const uint8_t* header_ptr = data + kCheckpointPrefixBytes;
  const json h = parse_header(header_ptr, header_bytes, what);
  const uint8_t* payload = header_ptr + header_bytes;
  const size_t payload_size = body - kCheckpointPrefixBytes - header_bytes;
  const uint64_t declared = unsigned_field(h, "payload_bytes", what, "header");
  TERSE_CHECK(declared == payload_size, CorruptData, "checkpoint ", what, ": header declares ",
              declared, " payload bytes but the file holds ", payload_size,
              "; the file is corrupt: use an older checkpoint");

  Checkpoint ckpt;
  ckpt.meta = h["meta"];
  const json& sections = object_field(h, "sections", what, "header");
  for (const auto& [section, sec] : sections.items()) {
    TERSE_CHECK(!section.empty(), CorruptData, "checkpoint ", what,
                ": a section has an empty name (expected non-empty)");
    decode_scalars(sec, section, what, &ckpt.sections[section]);
  }
  const json& entries = field(h, "entries", what, "header");
  TERSE_CHECK(entries.is_array(), CorruptData, "checkpoint ", what, ": 'entries' is ",
              entries.type_name(), " (expected an array)");
  std::vector<std::pair<uint64_t, uint64_t>> ranges;  // [offset, end) for the overlap check
  for (size_t i = 0; i < entries.size(); ++i) {
    const json& e = entries[i];
    const std::string where = "entry " + std::to_string(i);
    const json& sec = field(e, "section", what, where);
    const json& name = field(e, "name", what, where);
    const json& dt = field(e, "dtype", what, where);
    const json& shape_j = field(e, "shape", what, where);
    if (!sec.is_string()) fail_field(what, where, "section", sec, "a string");
    if (!name.is_string() || name.get_ref<const std::string&>().empty())
      fail_field(what, where, "name", name, "a non-empty string");
    const std::string& section = sec.get_ref<const std::string&>();
    const std::string label = where + " ('" + section + "/" + name.get<std::string>() + "')";
    TERSE_CHECK(ckpt.sections.count(section) != 0, CorruptData, "checkpoint ", what, ": ", label,
                " names section '", section, "', which the header does not list");
    DType dtype = DType::kF32;
    if (!dt.is_string() || !dtype_by_name(dt.get<std::string>(), &dtype))
      fail_field(what, label, "dtype", dt, "one of f32, bf16, f16, f64, i32, i64, u8");
    if (!shape_j.is_array()) fail_field(what, label, "shape", shape_j, "an array of sizes");
    std::vector<int64_t> shape;
    for (const json& d : shape_j) {
      if (!d.is_number_unsigned() ||
          d.get<uint64_t>() > uint64_t{std::numeric_limits<int64_t>::max()})
        fail_field(what, label, "shape", shape_j, "non-negative sizes");
      shape.push_back(d.get<int64_t>());
    }
    const uint64_t offset = unsigned_field(e, "offset", what, label);
    const uint64_t nbytes = unsigned_field(e, "nbytes", what, label);
    TERSE_CHECK(offset <= payload_size && nbytes <= payload_size - offset, CorruptData,
                "checkpoint ", what, ": ", label, " spans bytes [", offset, ", ", offset, " + ",
                nbytes, ") outside the ", payload_size,
                "-byte payload; the file is corrupt: use an older checkpoint");
    int64_t numel = 0;
    TERSE_CHECK(shape_numel(shape, &numel) && static_cast<uint64_t>(numel) <= payload_size &&
                    static_cast<uint64_t>(numel) * dtype_size(dtype) == nbytes,
                CorruptData, "checkpoint ", what, ": ", label, " has shape ", shape_str(shape),
                " of ", dtype_name(dtype), " but ", nbytes,
                " bytes (expected shape x dtype size); the file is corrupt");
    StateDict& sd = ckpt.sections[section];
    TERSE_CHECK(sd.tensors.count(name.get<std::string>()) == 0, CorruptData, "checkpoint ", what,
                ": ", label, " appears twice (expected unique names per section)");
    if (nbytes > 0) ranges.emplace_back(offset, offset + nbytes);
    StateTensor& t = sd.tensors[name.get<std::string>()];
    t.dtype = dtype;
    t.shape = std::move(shape);
    t.bytes.assign(payload + offset, payload + offset + nbytes);
  }
  std::sort(ranges.begin(), ranges.end());
  for (size_t i = 1; i < ranges.size(); ++i) {
    TERSE_CHECK(ranges[i].first >= ranges[i - 1].second, CorruptData, "checkpoint ", what,
                ": two entries overlap: bytes [", ranges[i - 1].first, ", ", ranges[i - 1].second,
                ") and [", ranges[i].first, ", ", ranges[i].second,
                ") (expected disjoint); the file is corrupt");
  }
  return ckpt;
}

std::vector<uint8_t> read_file(const std::string& path) {
  Fd f;
  f.fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (f.fd < 0) {
    const int err = errno;
    TERSE_THROW(
        InvalidArgument, "cannot open ", path, ": ", errno_text(err),
        err == ENOENT ? "; check the path (or start without --resume)" : "; check its permissions");
  }
  struct stat st {};
  TERSE_CHECK(::fstat(f.fd, &st) == 0 && S_ISREG(st.st_mode), InvalidArgument, "cannot read ", path,
              ": not a regular file; check the path");
  std::vector<uint8_t> bytes(static_cast<size_t>(st.st_size));
  size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = ::read(f.fd, bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    TERSE_CHECK(n >= 0, InvalidArgument, "reading ", path, " failed after ", done, " of ",
                bytes.size(), " bytes: ", errno_text(errno), "; check the disk");
    TERSE_CHECK(n > 0, InvalidArgument, "reading ", path, ": the file shrank to ", done,
                " bytes while being read (expected ", bytes.size(),
                "); another process is writing it");
    done += static_cast<size_t>(n);
  }
  return bytes;
}

void write_file_atomic(const std::string& path, const uint8_t* data, size_t size) {
  TERSE_CHECK(!path.empty(), InvalidArgument, "write_file_atomic: empty path; pass a file name");
  const std::string tmp = path + ".tmp";
  auto fail = [&](const char* step, int err) {
    ::unlink(tmp.c_str());
    TERSE_THROW(InvalidArgument, "writing ", path, " failed at ", step, ": ", errno_text(err),
                "; check free space and permissions of ", parent_dir(path),
                " (the previous file, if any, is unchanged)");
  };
  {
    Fd f;
    f.fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (f.fd < 0) fail("open of the .tmp file", errno);
    size_t done = 0;
    while (done < size) {
      const ssize_t n = ::write(f.fd, data + done, size - done);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) fail("write", n < 0 ? errno : ENOSPC);
      done += static_cast<size_t>(n);
    }
    // Data must be durable before the rename makes it visible under the final name.
    if (::fsync(f.fd) != 0) fail("fsync", errno);
    const int fd = f.fd;
    f.fd = -1;
    if (::close(fd) != 0) fail("close", errno);
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) fail("rename over the old file", errno);
  // The rename itself lives in the directory; sync it so it survives a power loss.
  Fd d;
  d.fd = ::open(parent_dir(path).c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  TERSE_CHECK(d.fd >= 0 && ::fsync(d.fd) == 0, InvalidArgument, "fsync of directory ",
              parent_dir(path), " after writing ", path, " failed: ", errno_text(errno),
              "; check the file system");
}

nlohmann::json read_checkpoint_meta(const std::string& path) {
  Fd f;
  f.fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (f.fd < 0) {
    const int err = errno;
    TERSE_THROW(
        InvalidArgument, "cannot open checkpoint ", path, ": ", errno_text(err),
        err == ENOENT ? "; check the path (or start without --resume)" : "; check its permissions");
  }
  struct stat st {};
  TERSE_CHECK(::fstat(f.fd, &st) == 0 && S_ISREG(st.st_mode), InvalidArgument,
              "cannot read checkpoint ", path, ": not a regular file; check the path");
  const auto file_size = static_cast<size_t>(st.st_size);
  auto read_at = [&](uint8_t* dst, size_t n, size_t offset) {
    size_t done = 0;
    while (done < n) {
      const ssize_t r = ::pread(f.fd, dst + done, n - done, static_cast<off_t>(offset + done));
      if (r < 0 && errno == EINTR) continue;
      TERSE_CHECK(r > 0, InvalidArgument, "reading checkpoint ", path, " failed at byte ",
                  offset + done, ": ", r < 0 ? errno_text(errno) : "unexpected end of file",
                  "; check the disk");
      done += static_cast<size_t>(r);
    }
  };
  uint8_t prefix[kCheckpointPrefixBytes] = {};
  read_at(prefix, std::min(file_size, kCheckpointPrefixBytes), 0);
  const size_t header_bytes = check_prefix(prefix, file_size, path);
  TERSE_CHECK(file_size >= kCheckpointPrefixBytes + kCrcBytes &&
                  header_bytes <= file_size - kCheckpointPrefixBytes - kCrcBytes,
              CorruptData, "checkpoint ", path, ": header length ", header_bytes,
              " does not fit in the ", file_size,
              "-byte file; it is truncated or corrupt: use an older checkpoint");
  std::vector<uint8_t> header(header_bytes);
  read_at(header.data(), header_bytes, kCheckpointPrefixBytes);
  return parse_header(header.data(), header_bytes, path)["meta"];
}

void save_checkpoint(const std::string& path, const Checkpoint& ckpt) {
  const std::vector<uint8_t> bytes = encode_checkpoint(ckpt);
  write_file_atomic(path, bytes.data(), bytes.size());
}

Checkpoint load_checkpoint(const std::string& path) {
  const std::vector<uint8_t> bytes = read_file(path);
  return decode_checkpoint(bytes.data(), bytes.size(), path);
}

}  // namespace terse
