// SPDX-License-Identifier: MIT
// GGUF files (llama.cpp, ggml): a validating reader and a streaming writer, version 3 (the
// reader also takes version 2, which has the same layout). docs/gguf.md describes the layout
// and where it was checked.
//
// Layout, all little endian: "GGUF", version u32, tensor count u64, metadata count u64; the
// metadata (key string, value type u32, value; a string is u64 length + bytes, an array is
// element type u32 + count u64 + elements); the tensor infos (name string, n_dims u32, dims
// u64[n_dims] with dims[0] the contiguous one, ggml type u32, offset u64 into the data
// section); zero padding to the alignment (metadata `general.alignment`, u32, a power of two;
// default 32); the data section, each tensor at its offset and padded to the alignment.
//
// The reader accepts what ggml's own loader accepts and nothing else, and says what is wrong
// and where: counts that the file cannot hold, strings or arrays running past the end, unknown
// value or tensor types, nested arrays, empty or duplicate keys, duplicate or over-long tensor
// names, more than 4 dimensions, sizes that overflow, rows that are not whole blocks of their
// type, offsets that are not the running, aligned sum ggml requires, data past the end.
// Tensors of any type are passed through byte for byte.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "blockcast/block/span.hpp"
#include "blockcast/io/io_error.hpp"
#include "blockcast/io/mapped_file.hpp"
#include "blockcast/io/names.hpp"
#include "blockcast/io/staged_file.hpp"

namespace blockcast::io {

/// Metadata value types.
enum class gguf_type : std::uint32_t { u8, i8, u16, i16, u32, i32, f32, boolean, string, array, u64, i64, f64 };

/// A ggml tensor type: its id in files, name, values per block and bytes per block.
struct ggml_type_info {
  std::uint32_t id;
  const char* name;
  std::uint32_t block_size, type_size;
};

/// Every tensor type ggml can store in a GGUF file (ggml.h, ggml-common.h). Ids not listed
/// (4, 5, 31-33, 36-38: removed from the format) are refused.
inline constexpr ggml_type_info ggml_types[] = {
    {0, "F32", 1, 4},           {1, "F16", 1, 2},          {2, "Q4_0", 32, 18},       {3, "Q4_1", 32, 20},
    {6, "Q5_0", 32, 22},        {7, "Q5_1", 32, 24},       {8, "Q8_0", 32, 34},       {9, "Q8_1", 32, 36},
    {10, "Q2_K", 256, 84},      {11, "Q3_K", 256, 110},    {12, "Q4_K", 256, 144},    {13, "Q5_K", 256, 176},
    {14, "Q6_K", 256, 210},     {15, "Q8_K", 256, 292},    {16, "IQ2_XXS", 256, 66},  {17, "IQ2_XS", 256, 74},
    {18, "IQ3_XXS", 256, 98},   {19, "IQ1_S", 256, 50},    {20, "IQ4_NL", 32, 18},    {21, "IQ3_S", 256, 110},
    {22, "IQ2_S", 256, 82},     {23, "IQ4_XS", 256, 136},  {24, "I8", 1, 1},          {25, "I16", 1, 2},
    {26, "I32", 1, 4},          {27, "I64", 1, 8},         {28, "F64", 1, 8},         {29, "IQ1_M", 256, 56},
    {30, "BF16", 1, 2},         {34, "TQ1_0", 256, 54},    {35, "TQ2_0", 256, 66},    {39, "MXFP4", 32, 17},
    {40, "NVFP4", 64, 36},      {41, "Q1_0", 128, 18},     {42, "Q2_0", 64, 18},
};

/// ggml's float types: F32 (0), F16 (1), BF16 (30).
inline constexpr std::uint32_t ggml_f32 = 0, ggml_f16 = 1, ggml_bf16 = 30;

/// The type with id `id`, or nullptr.
inline const ggml_type_info* find_ggml_type(std::uint32_t id) {
  for (const auto& t : ggml_types)
    if (t.id == id) return &t;
  return nullptr;
}

/// A metadata value: a scalar, a string, or an array of either. Numbers and booleans are kept
/// as their stored little-endian bytes, so a file read and written again has the same bytes.
struct gguf_value {
  gguf_type type = gguf_type::u8;     // gguf_type::array for an array
  gguf_type element = gguf_type::u8;  // an array's element type (for a scalar: its own type)
  std::uint64_t count = 1;            // elements (1 for a scalar)
  std::vector<std::uint8_t> raw;      // numbers and booleans, count * size bytes
  std::vector<std::string> strings;   // strings, count of them

  bool is_array() const { return type == gguf_type::array; }

  template <class T>
  static gguf_value scalar(gguf_type t, T v) {
    gguf_value r;
    r.type = r.element = t;
    r.raw.resize(sizeof v);
    std::memcpy(r.raw.data(), &v, sizeof v);  // little endian hosts only (see io/safetensors.hpp)
    return r;
  }
  static gguf_value u32(std::uint32_t v) { return scalar(gguf_type::u32, v); }
  static gguf_value u64(std::uint64_t v) { return scalar(gguf_type::u64, v); }
  static gguf_value f32(float v) { return scalar(gguf_type::f32, v); }
  static gguf_value string(std::string s) {
    gguf_value r;
    r.type = r.element = gguf_type::string;
    r.strings.push_back(std::move(s));
    return r;
  }
  static gguf_value string_array(std::vector<std::string> s) {
    gguf_value r;
    r.type = gguf_type::array;
    r.element = gguf_type::string;
    r.count = s.size();
    r.strings = std::move(s);
    return r;
  }

  /// A scalar of type `want` as T (T the matching C++ type); nullopt-like false if it is not.
  template <class T>
  bool get(gguf_type want, T& out) const {
    if (type != want || raw.size() != sizeof(T)) return false;
    std::memcpy(&out, raw.data(), sizeof(T));
    return true;
  }
  bool operator==(const gguf_value& o) const {
    return type == o.type && element == o.element && count == o.count && raw == o.raw && strings == o.strings;
  }
};

/// Bytes of one element of a metadata type (0 for string and array).
inline std::size_t gguf_size_of(gguf_type t) {
  switch (t) {
    case gguf_type::u8: case gguf_type::i8: case gguf_type::boolean: return 1;
    case gguf_type::u16: case gguf_type::i16: return 2;
    case gguf_type::u32: case gguf_type::i32: case gguf_type::f32: return 4;
    case gguf_type::u64: case gguf_type::i64: case gguf_type::f64: return 8;
    default: return 0;
  }
}

/// One tensor of a GGUF file.
struct gguf_tensor {
  std::string name;
  std::vector<std::uint64_t> dims;  // dims[0] is the contiguous dimension (ggml's ne)
  std::uint32_t type = 0;           // ggml type id (ggml_types)
  std::uint64_t offset = 0;         // into the data section
  std::uint64_t bytes = 0;
  std::uint64_t elements() const {
    std::uint64_t n = 1;
    for (auto d : dims) n *= d;
    return n;
  }
};

inline constexpr std::uint32_t gguf_default_alignment = 32;
inline constexpr std::size_t gguf_max_name = 63;  // ggml's GGML_MAX_NAME (64) minus the terminator
inline constexpr std::size_t gguf_max_dims = 4;

namespace detail {
// The byte size of a tensor of ggml type `t` and dims, or a message saying why there is none.
inline std::string gguf_tensor_bytes(const ggml_type_info& t, const std::vector<std::uint64_t>& dims, std::uint64_t& bytes) {
  constexpr std::uint64_t limit = static_cast<std::uint64_t>(INT64_MAX);
  std::uint64_t n = 1;
  for (auto d : dims) {
    if (d > limit) return "a dimension of " + std::to_string(d) + " (more than 2^63 - 1)";
    if (d != 0 && n > limit / d) return "its size overflows";
    n *= d;
  }
  const std::uint64_t row = dims.empty() ? 1 : dims[0];
  if (row % t.block_size != 0)
    return std::to_string(row) + " values per row, not a whole number of " + t.name + " blocks of " + std::to_string(t.block_size);
  if (n / t.block_size > limit / t.type_size) return "its size in bytes overflows";
  bytes = n / t.block_size * t.type_size;
  return {};
}
inline std::uint64_t align_up(std::uint64_t x, std::uint64_t a) { return (x + a - 1) / a * a; }
}  // namespace detail

/// A memory-mapped, validated GGUF file.
class gguf_file {
 public:
  explicit gguf_file(const std::string& path) : path_(path), file_(path) { parse(); }

  const std::string& path() const { return path_; }
  std::uint32_t version() const { return version_; }
  std::uint64_t alignment() const { return alignment_; }
  /// Metadata in file order.
  const std::vector<std::pair<std::string, gguf_value>>& metadata() const { return metadata_; }
  const gguf_value* find_metadata(const std::string& key) const {
    const auto it = metadata_index_.find(key);
    return it == metadata_index_.end() ? nullptr : &metadata_[it->second].second;
  }
  /// Tensors in file order.
  const std::vector<gguf_tensor>& tensors() const { return tensors_; }
  bool contains(const std::string& name) const { return tensor_index_.count(name) != 0; }
  const gguf_tensor& find(const std::string& name) const {
    const auto it = tensor_index_.find(name);
    if (it == tensor_index_.end()) detail::fail(path_, "no tensor " + in_quotes(name));
    return tensors_[it->second];
  }
  /// Where the data section starts in the file.
  std::uint64_t data_offset() const { return data_; }
  /// The tensor's bytes in the mapped file (valid while this object lives).
  span<const std::uint8_t> bytes(const gguf_tensor& t) const {
    return {file_.data() + data_ + t.offset, static_cast<std::size_t>(t.bytes)};
  }
  /// Copies `size` bytes of tensor t from byte `offset` within it, with pread.
  void read(const gguf_tensor& t, std::uint64_t offset, std::size_t size, void* out) const {
    if (offset > t.bytes || size > t.bytes - offset)
      detail::fail(path_, "tensor " + in_quotes(t.name) + ": read of " + std::to_string(size) + " bytes at " + std::to_string(offset) +
                              " is outside its " + std::to_string(t.bytes) + " bytes");
    file_.read(data_ + t.offset + offset, size, out);
  }
  void check_unchanged() const { file_.check_unchanged(); }

 private:
  // A cursor over the header that never reads past the end of the file.
  struct cursor {
    const gguf_file& f;
    std::uint64_t at = 0;
    std::uint64_t left() const { return f.file_.size() - at; }
    void need(std::uint64_t n, const std::string& what) const {
      if (n > left())
        detail::fail(f.path_, "truncated: " + what + " needs " + std::to_string(n) + " bytes at offset " + std::to_string(at) +
                                  ", the file has " + std::to_string(left()) + " left");
    }
    template <class T>
    T number(const std::string& what) {
      need(sizeof(T), what);
      T v;
      std::memcpy(&v, f.file_.data() + at, sizeof v);
      at += sizeof v;
      return v;
    }
    std::string string(const std::string& what) {
      const auto n = number<std::uint64_t>(what + " (its length)");
      need(n, what);
      std::string s(reinterpret_cast<const char*>(f.file_.data() + at), static_cast<std::size_t>(n));
      at += n;
      return s;
    }
  };

  gguf_value value(cursor& c, gguf_type type, const std::string& where) {
    gguf_value v;
    v.type = v.element = type;
    if (type == gguf_type::array) {
      const auto element = c.number<std::uint32_t>(where + " (array element type)");
      if (element > static_cast<std::uint32_t>(gguf_type::f64))
        detail::fail(path_, where + ": unknown array element type " + std::to_string(element));
      v.element = static_cast<gguf_type>(element);
      if (v.element == gguf_type::array) detail::fail(path_, where + ": an array of arrays (ggml reads none)");
      v.count = c.number<std::uint64_t>(where + " (array length)");
    }
    if (v.element == gguf_type::string) {
      if (v.count > c.left() / 8)  // each string needs at least its 8-byte length
        detail::fail(path_, where + ": " + std::to_string(v.count) + " strings cannot fit in the " + std::to_string(c.left()) +
                                " bytes left");
      v.strings.reserve(static_cast<std::size_t>(v.count));
      for (std::uint64_t i = 0; i < v.count; ++i) v.strings.push_back(c.string(where + " (string " + std::to_string(i) + ")"));
    } else {
      const std::size_t size = gguf_size_of(v.element);
      if (v.count > c.left() / size)
        detail::fail(path_, where + ": " + std::to_string(v.count) + " values of " + std::to_string(size) + " bytes cannot fit in the " +
                                std::to_string(c.left()) + " bytes left");
      v.raw.assign(file_.data() + c.at, file_.data() + c.at + v.count * size);
      c.at += v.count * size;
    }
    return v;
  }

  void parse() {
    cursor c{*this};
    c.need(4, "the magic");
    if (std::memcmp(file_.data(), "GGUF", 4) != 0) detail::fail(path_, "not a GGUF file (it does not start with \"GGUF\")");
    c.at = 4;
    version_ = c.number<std::uint32_t>("the version");
    if (version_ != 2 && version_ != 3)
      detail::fail(path_, "GGUF version " + std::to_string(version_) + " (only versions 2 and 3 are read)");
    const auto tensor_count = c.number<std::uint64_t>("the tensor count");
    const auto metadata_count = c.number<std::uint64_t>("the metadata count");
    // a metadata entry takes at least 8 + 4 bytes, a tensor info at least 8 + 4 + 4 + 8
    if (metadata_count > c.left() / 12)
      detail::fail(path_, std::to_string(metadata_count) + " metadata entries cannot fit in a file of " + std::to_string(file_.size()) + " bytes");
    if (tensor_count > c.left() / 24)
      detail::fail(path_, std::to_string(tensor_count) + " tensors cannot fit in a file of " + std::to_string(file_.size()) + " bytes");
    for (std::uint64_t i = 0; i < metadata_count; ++i) {
      const std::string where = "metadata entry " + std::to_string(i);
      std::string key = c.string(where + " (its key)");
      if (key.empty()) detail::fail(path_, where + " has an empty key");
      const auto type = c.number<std::uint32_t>(where + " " + in_quotes(key) + " (its type)");
      if (type > static_cast<std::uint32_t>(gguf_type::f64))
        detail::fail(path_, "metadata " + in_quotes(key) + " has unknown value type " + std::to_string(type));
      gguf_value v = value(c, static_cast<gguf_type>(type), "metadata " + in_quotes(key));
      if (!metadata_index_.emplace(key, metadata_.size()).second) detail::fail(path_, "metadata key " + in_quotes(key) + " appears twice");
      metadata_.emplace_back(std::move(key), std::move(v));
    }
    if (const gguf_value* a = find_metadata("general.alignment")) {
      std::uint32_t alignment = 0;
      if (!a->get(gguf_type::u32, alignment)) detail::fail(path_, "general.alignment is not a u32");
      if (alignment == 0 || (alignment & (alignment - 1)) != 0)
        detail::fail(path_, "general.alignment = " + std::to_string(alignment) + " is not a power of two");
      alignment_ = alignment;
    }
    std::uint64_t expected = 0;  // ggml requires each offset to be the aligned running size
    for (std::uint64_t i = 0; i < tensor_count; ++i) {
      gguf_tensor t;
      t.name = c.string("tensor info " + std::to_string(i) + " (its name)");
      const std::string where = "tensor " + in_quotes(t.name);
      if (t.name.empty()) detail::fail(path_, "tensor info " + std::to_string(i) + " has an empty name");
      if (t.name.size() > gguf_max_name)
        detail::fail(path_, where + ": a name of " + std::to_string(t.name.size()) + " bytes (ggml allows " + std::to_string(gguf_max_name) + ")");
      const auto n_dims = c.number<std::uint32_t>(where + " (its dimension count)");
      if (n_dims > gguf_max_dims) detail::fail(path_, where + " has " + std::to_string(n_dims) + " dimensions (ggml allows 4)");
      for (std::uint32_t d = 0; d < n_dims; ++d) t.dims.push_back(c.number<std::uint64_t>(where + " (its dimensions)"));
      t.type = c.number<std::uint32_t>(where + " (its type)");
      const ggml_type_info* type = find_ggml_type(t.type);
      if (!type) detail::fail(path_, where + " has unknown ggml type " + std::to_string(t.type));
      const std::string why = detail::gguf_tensor_bytes(*type, t.dims, t.bytes);
      if (!why.empty()) detail::fail(path_, where + " (" + type->name + "): " + why);
      t.offset = c.number<std::uint64_t>(where + " (its offset)");
      if (t.offset != expected)
        detail::fail(path_, where + " has offset " + std::to_string(t.offset) + ", expected " + std::to_string(expected) +
                                " (tensors follow each other in order, each padded to the alignment of " + std::to_string(alignment_) + ")");
      if (expected > UINT64_MAX - alignment_ || t.bytes > UINT64_MAX - alignment_ - expected)
        detail::fail(path_, where + ": the data section's size overflows");
      expected += detail::align_up(t.bytes, alignment_);
      if (!tensor_index_.emplace(t.name, tensors_.size()).second) detail::fail(path_, "tensor " + in_quotes(t.name) + " appears twice");
      tensors_.push_back(std::move(t));
    }
    data_ = detail::align_up(c.at, alignment_);
    for (const auto& t : tensors_)
      if (data_ > file_.size() || t.offset + t.bytes > file_.size() - data_)
        detail::fail(path_, "truncated: tensor " + in_quotes(t.name) + " ends at byte " + std::to_string(data_ + t.offset + t.bytes) +
                                " of a file of " + std::to_string(file_.size()));
  }

  std::string path_;
  mapped_file file_;
  std::uint32_t version_ = 0;
  std::uint64_t alignment_ = gguf_default_alignment, data_ = 0;
  std::vector<std::pair<std::string, gguf_value>> metadata_;
  std::map<std::string, std::size_t> metadata_index_;
  std::vector<gguf_tensor> tensors_;
  std::map<std::string, std::size_t> tensor_index_;
};

/// Writes a GGUF file (version 3) in one pass: set the metadata and declare every tensor
/// first, then write (or append in pieces) each tensor's bytes in declared order; commit()
/// syncs and renames it into place. Written to a temporary file of its own: a failure or
/// exception leaves nothing behind (io/staged_file.hpp).
class gguf_stream_writer {
 public:
  explicit gguf_stream_writer(std::string path, std::string label = {})
      : path_(std::move(path)), label_(label.empty() ? path_ : std::move(label)), file_(path_, label_) {}

  /// Sets (or replaces, keeping its place) a metadata entry.
  void set_metadata(const std::string& key, gguf_value value) {
    if (file_.is_open()) detail::fail(label_, "metadata " + in_quotes(key) + " set after writing started");
    if (key.empty()) detail::fail(label_, "a metadata key is empty");
    if (value.type == gguf_type::array ? value.element == gguf_type::array || value.element > gguf_type::f64 : value.type > gguf_type::f64)
      detail::fail(label_, "metadata " + in_quotes(key) + ": a value type GGUF cannot store");
    const bool strings = value.element == gguf_type::string;
    if ((strings ? value.strings.size() : value.raw.size() / gguf_size_of(value.element)) != value.count ||
        (!strings && value.raw.size() % gguf_size_of(value.element) != 0) || (!value.is_array() && value.count != 1))
      detail::fail(label_, "metadata " + in_quotes(key) + ": its count does not match its values");
    if (key == "general.alignment") {
      std::uint32_t a = 0;
      if (!value.get(gguf_type::u32, a) || a == 0 || (a & (a - 1)) != 0)
        detail::fail(label_, "general.alignment must be a u32 power of two");
      alignment_ = a;
    }
    for (auto& [k, v] : metadata_)
      if (k == key) {
        v = std::move(value);
        return;
      }
    metadata_.emplace_back(key, std::move(value));
  }
  /// Declares the next tensor: name, dims (dims[0] contiguous) and ggml type id.
  void declare(const std::string& name, std::vector<std::uint64_t> dims, std::uint32_t type) {
    if (file_.is_open()) detail::fail(label_, "tensor " + in_quotes(name) + " declared after writing started");
    if (name.empty() || name.size() > gguf_max_name)
      detail::fail(label_, "tensor name " + in_quotes(name) + ": GGUF names have 1 to " + std::to_string(gguf_max_name) + " bytes");
    if (dims.size() > gguf_max_dims) detail::fail(label_, "tensor " + in_quotes(name) + ": more than 4 dimensions");
    const ggml_type_info* info = find_ggml_type(type);
    if (!info) detail::fail(label_, "tensor " + in_quotes(name) + ": unknown ggml type " + std::to_string(type));
    gguf_tensor t{name, std::move(dims), type, 0, 0};
    const std::string why = detail::gguf_tensor_bytes(*info, t.dims, t.bytes);
    if (!why.empty()) detail::fail(label_, "tensor " + in_quotes(name) + " (" + info->name + "): " + why);
    for (const auto& other : tensors_)
      if (other.name == name) detail::fail(label_, "tensor " + in_quotes(name) + " declared twice");
    tensors_.push_back(std::move(t));
  }
  /// Writes the next declared tensor, which must be `name`, whole.
  void write(const std::string& name, span<const std::uint8_t> data) {
    const gguf_tensor& t = next(name);
    if (written_ != 0 || data.size() != t.bytes)
      detail::fail(label_, "tensor " + in_quotes(name) + " needs " + std::to_string(t.bytes) + " bytes, given " + std::to_string(data.size()));
    append(name, data);
  }
  /// Writes the next piece of the next declared tensor, `name`.
  void append(const std::string& name, span<const std::uint8_t> data) {
    const gguf_tensor& t = next(name);
    if (data.size() > t.bytes - written_)
      detail::fail(label_, "tensor " + in_quotes(name) + ": " + std::to_string(written_ + data.size()) + " bytes given, it has " +
                               std::to_string(t.bytes));
    if (!file_.is_open()) open_and_write_header();
    file_.put(data.data(), data.size());
    written_ += data.size();
    if (written_ == t.bytes) finish_tensor();
  }
  /// Finishes the file and renames it into place.
  void commit() {
    if (!file_.is_open()) open_and_write_header();
    while (next_ < tensors_.size() && tensors_[next_].bytes == 0) finish_tensor();
    if (next_ != tensors_.size())
      detail::fail(label_, std::to_string(tensors_.size() - next_) + " declared tensors were not written (next: " +
                               in_quotes(tensors_[next_].name) + ")");
    file_.commit();
  }

 private:
  const gguf_tensor& next(const std::string& name) {
    if (!file_.is_open()) open_and_write_header();
    while (written_ == 0 && next_ < tensors_.size() && tensors_[next_].bytes == 0 && tensors_[next_].name != name) finish_tensor();
    if (next_ == tensors_.size()) detail::fail(label_, "tensor " + in_quotes(name) + " was not declared (or was written already)");
    if (tensors_[next_].name != name)
      detail::fail(label_, "tensor " + in_quotes(name) + " written out of order (expected " + in_quotes(tensors_[next_].name) + ")");
    return tensors_[next_];
  }
  void finish_tensor() {  // zero padding to the alignment
    static const std::uint8_t zeros[256] = {};
    std::uint64_t pad = detail::align_up(tensors_[next_].bytes, alignment_) - tensors_[next_].bytes;
    for (; pad > 0; pad -= std::min<std::uint64_t>(pad, sizeof zeros)) file_.put(zeros, static_cast<std::size_t>(std::min<std::uint64_t>(pad, sizeof zeros)));
    ++next_;
    written_ = 0;
  }
  template <class T>
  static void number(std::string& out, T v) {
    char b[sizeof(T)];
    std::memcpy(b, &v, sizeof v);
    out.append(b, sizeof b);
  }
  static void string(std::string& out, const std::string& s) {
    number<std::uint64_t>(out, s.size());
    out += s;
  }
  void open_and_write_header() {
    std::string h = "GGUF";
    number<std::uint32_t>(h, 3);
    number<std::uint64_t>(h, tensors_.size());
    number<std::uint64_t>(h, metadata_.size());
    for (const auto& [key, v] : metadata_) {
      string(h, key);
      number<std::uint32_t>(h, static_cast<std::uint32_t>(v.type));
      if (v.is_array()) {
        number<std::uint32_t>(h, static_cast<std::uint32_t>(v.element));
        number<std::uint64_t>(h, v.count);
      }
      if (v.element == gguf_type::string)
        for (const auto& s : v.strings) string(h, s);
      else
        h.append(reinterpret_cast<const char*>(v.raw.data()), v.raw.size());
    }
    std::uint64_t offset = 0;
    for (auto& t : tensors_) {
      string(h, t.name);
      number<std::uint32_t>(h, static_cast<std::uint32_t>(t.dims.size()));
      for (auto d : t.dims) number<std::uint64_t>(h, d);
      number<std::uint32_t>(h, t.type);
      t.offset = offset;
      number<std::uint64_t>(h, offset);
      offset += detail::align_up(t.bytes, alignment_);
    }
    h.resize(static_cast<std::size_t>(detail::align_up(h.size(), alignment_)), '\0');
    file_.open();
    file_.put(h.data(), h.size());
  }

  std::string path_, label_;
  detail::staged_file file_;
  std::uint64_t alignment_ = gguf_default_alignment;
  std::vector<std::pair<std::string, gguf_value>> metadata_;
  std::vector<gguf_tensor> tensors_;
  std::size_t next_ = 0;
  std::uint64_t written_ = 0;
};

}  // namespace blockcast::io
