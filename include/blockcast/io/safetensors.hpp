// SPDX-License-Identifier: MIT
// safetensors files: a validating, memory-mapped reader and an atomic writer.
//
// Format: 8 bytes little-endian header length N, N bytes of JSON
//   {"<name>": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, ...,
//    "__metadata__": {"<key>": "<value>", ...}}
// then the data section; offsets are relative to its start. The reader checks everything a
// corrupt or hostile file could get wrong (sizes, offsets, overlaps, dtype names, shapes,
// JSON) and reports the file and the tensor. Only regular files are opened (a FIFO or a device
// is refused, never waited on). The writer writes to a temporary file of its own (created
// exclusively, so it never overwrites another file) in the target's directory and renames it
// into place, so a failure never leaves a half-written file. Both agree on what a valid
// file is: names are non-empty, sizes fit 64 bits. POSIX (mmap, rename); the JSON is parsed
// with nlohmann::json, nesting bounded (io/json.hpp).
#pragma once

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <limits>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "blockcast/api.hpp"  // widen_bf16, widen_f16
#include "blockcast/block/span.hpp"
#include "blockcast/error.hpp"
#include "blockcast/io/fault_injection.hpp"
#include "blockcast/io/io_error.hpp"
#include "blockcast/io/json.hpp"
#include "blockcast/io/mapped_file.hpp"
#include "blockcast/io/names.hpp"
#include "blockcast/io/signals.hpp"
#include "blockcast/io/staged_file.hpp"

namespace blockcast::io {

enum class dtype : std::uint8_t { boolean, u8, i8, f8_e5m2, f8_e4m3, i16, u16, f16, bf16, i32, u32, f32, i64, u64, f64 };

struct dtype_info {
  dtype type;
  const char* name;
  std::size_t size;
};

inline constexpr dtype_info dtypes[] = {
    {dtype::boolean, "BOOL", 1}, {dtype::u8, "U8", 1},    {dtype::i8, "I8", 1},    {dtype::f8_e5m2, "F8_E5M2", 1},
    {dtype::f8_e4m3, "F8_E4M3", 1}, {dtype::i16, "I16", 2}, {dtype::u16, "U16", 2}, {dtype::f16, "F16", 2},
    {dtype::bf16, "BF16", 2},    {dtype::i32, "I32", 4},  {dtype::u32, "U32", 4},  {dtype::f32, "F32", 4},
    {dtype::i64, "I64", 8},      {dtype::u64, "U64", 8},  {dtype::f64, "F64", 8},
};

inline const dtype_info& info(dtype t) {
  for (const auto& d : dtypes)
    if (d.type == t) return d;
  return dtypes[0];
}
inline const char* name(dtype t) { return info(t).name; }
inline std::size_t size_of(dtype t) { return info(t).size; }

struct tensor_info {
  std::string name;
  dtype type = dtype::f32;
  std::vector<std::uint64_t> shape;
  std::uint64_t begin = 0, end = 0;  // byte range in the data section
  std::uint64_t elements() const {
    std::uint64_t n = 1;
    for (auto d : shape) n *= d;
    return n;
  }
};

namespace detail {
/// The byte size of a tensor of `shape` and element size `element_bytes`, or false when it
/// does not fit 64 bits. Zero dimensions do not excuse the others: [0, 2^63, 4] is refused,
/// by the reader and the writer alike.
inline bool tensor_bytes(const std::vector<std::uint64_t>& shape, std::size_t element_bytes, std::uint64_t& bytes) {
  std::uint64_t nonzero = element_bytes;
  bool empty = false;
  for (const auto d : shape) {
    if (d == 0) {
      empty = true;
      continue;
    }
    if (nonzero > std::numeric_limits<std::uint64_t>::max() / d) return false;
    nonzero *= d;
  }
  bytes = empty ? 0 : nonzero;
  return true;
}

}  // namespace detail

/// A memory-mapped, validated safetensors file.
class safetensors_file {
 public:
  explicit safetensors_file(const std::string& path) : path_(path), file_(path) {
    if (file_.size() < 8) {
      const std::uint64_t size = file_.size();
      file_.release();
      detail::fail(path, "truncated: " + std::to_string(size) + " bytes, a header needs at least 8");
    }
    base_ = file_.data();
    size_ = file_.size();
    parse();  // on an exception, file_ unmaps and closes
  }
  safetensors_file(const safetensors_file&) = delete;
  safetensors_file& operator=(const safetensors_file&) = delete;
  safetensors_file(safetensors_file&&) noexcept = default;
  safetensors_file& operator=(safetensors_file&&) noexcept = default;

  const std::string& path() const { return path_; }
  /// Tensors in file order (by data offset).
  const std::vector<tensor_info>& tensors() const { return tensors_; }
  const std::map<std::string, std::string>& metadata() const { return metadata_; }

  bool contains(const std::string& name) const { return by_name_.count(name) != 0; }
  const tensor_info& find(const std::string& name) const {
    const auto it = by_name_.find(name);
    if (it == by_name_.end()) detail::fail(path_, "no tensor " + in_quotes(name));
    return tensors_[it->second];
  }
  /// Throws io_error if the file changed (size or modification time) since it was opened:
  /// what was read from it may be a mix of two versions.
  void check_unchanged() const { file_.check_unchanged(); }
  /// Lets the kernel drop the mapped pages of a tensor that has been read (they are read
  /// again from the file if needed), so resident memory does not grow with the model.
  /// `from`, `to`: a byte range inside the tensor (default: all of it).
  void release_pages(const tensor_info& t, std::uint64_t from = 0, std::uint64_t to = ~std::uint64_t{0}) const {
    to = std::min(to, t.end - t.begin);
    if (from < to) file_.release_pages(data_ + t.begin + from, data_ + t.begin + to);
  }
  /// Copies `size` bytes of tensor t from byte `offset` within it into `out`, with pread(2)
  /// rather than through the mapping: on a file in the page cache that is several times
  /// faster than touching fresh mapped pages, and a file truncated meanwhile is an io_error.
  /// Safe to call from several threads at once.
  void read(const tensor_info& t, std::uint64_t offset, std::size_t size, void* out) const {
    if (offset > t.end - t.begin || size > t.end - t.begin - offset)
      detail::fail(path_, "tensor " + in_quotes(t.name) + ": read of " + std::to_string(size) + " bytes at " + std::to_string(offset) +
                              " is outside its " + std::to_string(t.end - t.begin) + " bytes");
    file_.read(data_ + t.begin + offset, size, out);
  }
  /// The tensor's bytes, in the mapped file (valid while this object lives).
  span<const std::uint8_t> bytes(const tensor_info& t) const {
    return {base_ + data_ + t.begin, static_cast<std::size_t>(t.end - t.begin)};
  }
  /// An F32, F16 or BF16 tensor as floats.
  std::vector<float> to_float(const tensor_info& t) const {
    const auto b = bytes(t);
    std::vector<float> out(static_cast<std::size_t>(t.elements()));
    if (t.type == dtype::f32) {
      std::memcpy(out.data(), b.data(), b.size());
    } else if (t.type == dtype::f16) {
      widen_f16(b.data(), out.size(), out.data());
    } else if (t.type == dtype::bf16) {
      widen_bf16(b.data(), out.size(), out.data());
    } else {
      detail::fail(path_, "tensor " + in_quotes(t.name) + " is " + name(t.type) + ", not a float tensor (F32/F16/BF16)");
    }
    return out;
  }

 private:
  void parse() {
    std::uint64_t header = 0;
    for (int i = 0; i < 8; ++i) header |= static_cast<std::uint64_t>(base_[i]) << (8 * i);
    if (header > size_ - 8)
      detail::fail(path_, "truncated: the header claims " + std::to_string(header) + " bytes, the file has " +
                              std::to_string(size_ - 8) + " after the length");
    if (header > (std::uint64_t{100} << 20)) detail::fail(path_, "header of " + std::to_string(header) + " bytes (limit 100 MiB)");
    data_ = 8 + header;
    const std::uint64_t data_size = size_ - data_;
    nlohmann::json j;
    try {
      j = parse_json(reinterpret_cast<const char*>(base_ + 8), reinterpret_cast<const char*>(base_ + 8 + header));
    } catch (const nlohmann::json::exception& e) {
      detail::fail(path_, std::string("header is not valid JSON: ") + e.what());
    }
    if (!j.is_object()) detail::fail(path_, "header is not a JSON object");
    for (auto it = j.begin(); it != j.end(); ++it) {
      const std::string& key = it.key();
      if (key == "__metadata__") {
        if (!it->is_object()) detail::fail(path_, "__metadata__ is not an object");
        for (auto m = it->begin(); m != it->end(); ++m) {
          if (!m->is_string()) detail::fail(path_, "__metadata__ " + in_quotes(m.key()) + " is not a string");
          metadata_[m.key()] = m->get<std::string>();
        }
        continue;
      }
      tensors_.push_back(parse_tensor(key, *it, data_size));
    }
    std::sort(tensors_.begin(), tensors_.end(), [](const tensor_info& a, const tensor_info& b) {
      return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
    });
    for (std::size_t i = 0; i < tensors_.size(); ++i) by_name_.emplace(tensors_[i].name, i);
    // as the reference implementation: the tensors tile the data section, no gaps or overlaps
    std::uint64_t expected = 0;
    for (const auto& t : tensors_) {
      if (t.begin < expected) detail::fail(path_, "tensor " + in_quotes(t.name) + " overlaps the tensor before it");
      if (t.begin > expected) detail::fail(path_, "tensor " + in_quotes(t.name) + " starts after a gap of " + std::to_string(t.begin - expected) + " bytes");
      expected = t.end;
    }
    if (expected != data_size)
      detail::fail(path_, std::to_string(data_size - expected) + " bytes after the last tensor belong to none");
  }

  tensor_info parse_tensor(const std::string& key, const nlohmann::json& v, std::uint64_t data_size) const {
    const std::string where = "tensor " + in_quotes(key) + ": ";
    if (key.empty()) detail::fail(path_, "a tensor has an empty name");
    if (!v.is_object()) detail::fail(path_, where + "entry is not an object");
    tensor_info t;
    t.name = key;
    if (!v.contains("dtype") || !v["dtype"].is_string()) detail::fail(path_, where + "missing dtype");
    const std::string d = v["dtype"].get<std::string>();
    const auto found = std::find_if(std::begin(dtypes), std::end(dtypes), [&](const dtype_info& x) { return d == x.name; });
    if (found == std::end(dtypes)) detail::fail(path_, where + "unknown dtype " + in_quotes(d));
    t.type = found->type;
    if (!v.contains("shape") || !v["shape"].is_array()) detail::fail(path_, where + "missing shape");
    for (const auto& s : v["shape"]) {
      if (!s.is_number_unsigned()) detail::fail(path_, where + "shape entries must be non-negative integers");
      t.shape.push_back(s.get<std::uint64_t>());
    }
    std::uint64_t bytes = 0;
    if (!detail::tensor_bytes(t.shape, size_of(t.type), bytes)) detail::fail(path_, where + "shape overflows");
    if (!v.contains("data_offsets") || !v["data_offsets"].is_array() || v["data_offsets"].size() != 2 ||
        !v["data_offsets"][0].is_number_unsigned() || !v["data_offsets"][1].is_number_unsigned())
      detail::fail(path_, where + "data_offsets must be [begin, end]");
    t.begin = v["data_offsets"][0].get<std::uint64_t>();
    t.end = v["data_offsets"][1].get<std::uint64_t>();
    if (t.begin > t.end || t.end > data_size)
      detail::fail(path_, where + "data_offsets [" + std::to_string(t.begin) + ", " + std::to_string(t.end) +
                              "] outside the data section (" + std::to_string(data_size) + " bytes)");
    if (bytes != t.end - t.begin)
      detail::fail(path_, where + "shape needs " + std::to_string(bytes) + " bytes, data_offsets hold " +
                              std::to_string(t.end - t.begin));
    return t;
  }

  std::string path_;
  mapped_file file_;
  std::vector<tensor_info> tensors_;
  std::map<std::string, std::size_t> by_name_;  // index into tensors_
  std::map<std::string, std::string> metadata_;
  const std::uint8_t* base_ = nullptr;  // file_'s bytes
  std::uint64_t size_ = 0;
  std::uint64_t data_ = 0;  // offset of the data section
};

/// A tensor entry to declare: name, dtype, shape.
struct stored_entry {
  std::string name;
  dtype type;
  std::vector<std::uint64_t> shape;
};

/// Streams a safetensors file with at most one tensor in memory: every tensor is declared
/// (name, dtype, shape) first, so the header is known, then each one's bytes are written in
/// declaration order, whole (write) or in pieces (append). The bytes go to a temporary file of
/// its own next to the target (created exclusively: never another file); commit() checks that
/// every tensor was written, syncs and renames it into place. Destroyed before commit() (an
/// exception on the way), it removes the temporary file: nothing is left behind. Errors name
/// the file by `label` (default: the path), e.g. the output the user asked for when `path`
/// is a staged file.
class safetensors_stream_writer {
 public:
  explicit safetensors_stream_writer(std::string path, std::string label = {})
      : path_(std::move(path)), label_(label.empty() ? path_ : std::move(label)), file_(path_, label_) {}
  safetensors_stream_writer(const safetensors_stream_writer&) = delete;
  safetensors_stream_writer& operator=(const safetensors_stream_writer&) = delete;

  const std::string& path() const { return path_; }

  void declare(const std::string& name, dtype type, std::vector<std::uint64_t> shape) {
    if (file_.is_open()) detail::fail(label_, "tensor " + in_quotes(name) + " declared after writing started");
    if (name == "__metadata__" || name.empty()) detail::fail(label_, "invalid tensor name " + in_quotes(name));
    if (!names_.insert(name).second) detail::fail(label_, "tensor " + in_quotes(name) + " added twice");
    std::uint64_t bytes = 0;
    if (!detail::tensor_bytes(shape, size_of(type), bytes)) detail::fail(label_, "tensor " + in_quotes(name) + ": shape overflows");
    entries_.push_back({name, type, std::move(shape), bytes});
  }
  void set_metadata(const std::string& key, const std::string& value) {
    if (file_.is_open()) detail::fail(label_, "metadata " + in_quotes(key) + " set after writing started");
    metadata_[key] = value;
  }

  /// Writes the next declared tensor, which must be `name`, with exactly its declared size.
  void write(const std::string& name, span<const std::uint8_t> data) {
    const entry& e = next_entry(name);
    if (written_ != 0 || data.size() != e.bytes)
      detail::fail(label_, "tensor " + in_quotes(name) + ": shape needs " + std::to_string(e.bytes) + " bytes, given " +
                               std::to_string(data.size()));
    append(name, data);
  }
  /// Writes the next piece of the next declared tensor, `name`; the tensor is complete when
  /// its pieces add up to its declared size.
  void append(const std::string& name, span<const std::uint8_t> data) {
    const entry& e = next_entry(name);
    if (data.size() > e.bytes - written_)
      detail::fail(label_, "tensor " + in_quotes(name) + ": " + std::to_string(written_ + data.size()) +
                               " bytes given, its shape needs " + std::to_string(e.bytes));
    if (!file_.is_open()) open_and_write_header();
    file_.put(data.data(), data.size());
    written_ += data.size();
    if (written_ == e.bytes) {
      ++next_;
      written_ = 0;
    }
  }

  /// Finishes the file and renames it into place; throws io_error (leaving nothing) on failure.
  void commit() {
    while (next_ < entries_.size() && entries_[next_].bytes == 0 && written_ == 0) ++next_;  // empty tensors need no write
    if (next_ != entries_.size())
      detail::fail(label_, std::to_string(entries_.size() - next_) + " declared tensors were not written (next: " +
                               in_quotes(entries_[next_].name) + ")");
    if (!file_.is_open()) open_and_write_header();
    file_.commit();
  }

 private:
  struct entry {
    std::string name;
    dtype type;
    std::vector<std::uint64_t> shape;
    std::uint64_t bytes;
  };

  const entry& next_entry(const std::string& name) {
    while (written_ == 0 && next_ < entries_.size() && entries_[next_].bytes == 0 && entries_[next_].name != name) ++next_;
    if (next_ == entries_.size()) detail::fail(label_, "tensor " + in_quotes(name) + " was not declared");
    const entry& e = entries_[next_];
    if (e.name != name)
      detail::fail(label_, "tensor " + in_quotes(name) + " written out of order (expected " + in_quotes(e.name) + ")");
    return e;
  }

  void open_and_write_header() {
    nlohmann::json header = nlohmann::json::object();
    if (!metadata_.empty()) header["__metadata__"] = metadata_;
    std::uint64_t offset = 0;
    for (const auto& e : entries_) {
      header[e.name] = {{"dtype", name(e.type)}, {"shape", e.shape}, {"data_offsets", {offset, offset + e.bytes}}};
      offset += e.bytes;
    }
    std::string text = header.dump();
    while (text.size() % 8 != 0) text.push_back(' ');  // align the data section to 8 bytes
    file_.open();
    std::uint8_t length[8];
    for (int i = 0; i < 8; ++i) length[i] = static_cast<std::uint8_t>(static_cast<std::uint64_t>(text.size()) >> (8 * i));
    file_.put(length, 8);
    file_.put(text.data(), text.size());
  }
  std::string path_, label_;
  std::vector<entry> entries_;
  std::set<std::string> names_;
  std::map<std::string, std::string> metadata_;
  std::size_t next_ = 0;
  std::uint64_t written_ = 0;  // bytes of entries_[next_] written so far
  detail::staged_file file_;  // after path_ and label_, which it is made from
};

/// Writes a small safetensors file atomically from tensors held in memory (the bytes are
/// copied). For files larger than memory, use safetensors_stream_writer.
class safetensors_writer {
 public:
  explicit safetensors_writer(std::string path) : path_(std::move(path)) {}

  void add(const std::string& name, dtype type, std::vector<std::uint64_t> shape, span<const std::uint8_t> data) {
    std::vector<std::uint8_t> owned(data.begin(), data.end());
    add_owned(name, type, std::move(shape), std::move(owned));
  }
  void add_owned(const std::string& name, dtype type, std::vector<std::uint64_t> shape, std::vector<std::uint8_t> data) {
    if (name == "__metadata__" || name.empty()) detail::fail(path_, "invalid tensor name " + in_quotes(name));
    std::uint64_t bytes = 0;
    if (!detail::tensor_bytes(shape, size_of(type), bytes) || bytes != data.size())
      detail::fail(path_, "tensor " + in_quotes(name) + ": shape needs " + std::to_string(bytes) + " bytes, given " +
                              std::to_string(data.size()));
    if (!names_.insert(name).second) detail::fail(path_, "tensor " + in_quotes(name) + " added twice");
    entries_.push_back({name, type, std::move(shape), std::move(data)});
  }
  void add_f32(const std::string& name, std::vector<std::uint64_t> shape, span<const float> values) {
    add(name, dtype::f32, std::move(shape),
        span<const std::uint8_t>(reinterpret_cast<const std::uint8_t*>(values.data()), values.size() * 4));
  }
  void set_metadata(const std::string& key, const std::string& value) { metadata_[key] = value; }

  /// Writes the file; throws io_error (and leaves no file behind) on failure.
  void commit() {
    safetensors_stream_writer out(path_);
    for (const auto& [key, value] : metadata_) out.set_metadata(key, value);
    for (const auto& e : entries_) out.declare(e.name, e.type, e.shape);
    for (const auto& e : entries_) out.write(e.name, span<const std::uint8_t>(e.data.data(), e.data.size()));
    out.commit();
  }

 private:
  struct entry {
    std::string name;
    dtype type;
    std::vector<std::uint64_t> shape;
    std::vector<std::uint8_t> data;
  };
  std::string path_;
  std::vector<entry> entries_;
  std::set<std::string> names_;
  std::map<std::string, std::string> metadata_;
};

}  // namespace blockcast::io
