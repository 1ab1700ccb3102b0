// SPDX-License-Identifier: MIT
// A model on disk: one safetensors file, or the shards a "model.safetensors.index.json"
// lists ({"metadata": {...}, "weight_map": {"<tensor>": "<shard file name>", ...}}).
// The index is checked as thoroughly as a safetensors header: a regular file of bounded
// size, JSON of bounded nesting, shard names that are plain file names in the index's own
// directory (never a path, a NUL or a control character), and, by check_shards(), a
// weight_map that agrees with the shards tensor for tensor.
#pragma once

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <map>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "blockcast/io/json.hpp"
#include "blockcast/io/names.hpp"
#include "blockcast/io/safetensors.hpp"

namespace blockcast::io {

/// Whether `path` names a sharded model's index (it ends in ".index.json").
inline bool is_index_path(const std::string& path) {
  return ends_with(path, ".index.json");
}

/// The directory part of a path ("." for a bare file name).
inline std::string directory_of(const std::string& path) {
  const auto slash = path.rfind('/');
  return slash == std::string::npos ? "." : slash == 0 ? "/" : path.substr(0, slash);
}
/// The file-name part of a path.
inline std::string file_name_of(const std::string& path) {
  const auto slash = path.rfind('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

/// The content of a regular file of at most `limit` bytes (a FIFO or device is refused
/// without waiting on it).
inline std::string read_regular_file(const std::string& path, std::uint64_t limit) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) detail::fail(path, std::string("cannot open: ") + std::strerror(errno));
  struct stat st {};
  std::string text;
  const char* problem = nullptr;
  if (::fstat(fd, &st) != 0) problem = "cannot stat";
  else if (!S_ISREG(st.st_mode)) problem = "not a regular file";
  else if (static_cast<std::uint64_t>(st.st_size) > limit) problem = "too large for an index";
  if (!problem) {
    text.resize(static_cast<std::size_t>(st.st_size));
    std::size_t got = 0;
    while (got < text.size()) {
      const ssize_t n = ::read(fd, text.data() + got, text.size() - got);
      if (n <= 0) break;
      got += static_cast<std::size_t>(n);
    }
    if (got != text.size()) problem = "read failed (the file changed while it was read)";
  }
  ::close(fd);
  if (problem) detail::fail(path, problem);
  return text;
}

/// One safetensors file, or a sharded model's index and the shards it names.
struct model_files {
  std::string path;                               // the file or index the user named
  bool sharded = false;
  std::string dir;                                // the shards' directory (the index's)
  std::vector<std::string> shards;                // shard file names, in order of first mention
  std::map<std::string, std::string> weight_map;  // tensor -> shard file name
  nlohmann::json metadata = nlohmann::json::object();  // the index's "metadata"

  /// The path of shard i (the file itself for a single-file model).
  std::string shard_path(std::size_t i) const { return sharded ? dir + "/" + shards[i] : path; }
};

/// Opens a model: a .safetensors file as it is, or an index (read and validated; the shards
/// are not opened: see check_shards).
inline model_files open_model(const std::string& path) {
  model_files m;
  m.path = path;
  if (!is_index_path(path)) {
    m.shards = {path};
    return m;
  }
  m.sharded = true;
  m.dir = directory_of(path);
  const std::string text = read_regular_file(path, std::uint64_t{64} << 20);
  nlohmann::json index;
  try {
    index = parse_json(text);
  } catch (const nlohmann::json::exception& e) {
    detail::fail(path, std::string("not a safetensors index (needs a weight_map of tensor -> file): ") + e.what());
  }
  if (!index.is_object() || !index.contains("weight_map") || !index["weight_map"].is_object())
    detail::fail(path, "not a safetensors index (needs a weight_map of tensor -> file)");
  if (index.contains("metadata")) {
    if (!index["metadata"].is_object()) detail::fail(path, "the index's metadata is not an object");
    m.metadata = index["metadata"];
  }
  std::set<std::string> seen;
  for (const auto& [tensor, file] : index["weight_map"].items()) {
    if (!file.is_string()) detail::fail(path, "weight_map[" + in_quotes(tensor) + "] is not a file name");
    const std::string name = file.get<std::string>();
    if (!is_plain_file_name(name))
      detail::fail(path, "weight_map[" + in_quotes(tensor) + "] = " + in_quotes(name) +
                             " is not a plain file name in the index's directory");
    if (tensor.empty()) detail::fail(path, "weight_map has an empty tensor name");
    m.weight_map.emplace(tensor, name);
    if (seen.insert(name).second) m.shards.push_back(name);
  }
  if (m.shards.empty()) detail::fail(path, "the index lists no shards");
  return m;
}

/// Checks a sharded model's index against its shards: every weight_map entry is a tensor of
/// the shard it names, and every tensor of a listed shard is in the weight_map, mapped to that
/// shard (so no tensor is in two shards). Returns the number of tensors in all.
inline std::size_t check_shards(const model_files& m) {
  if (!m.sharded) return safetensors_file(m.path).tensors().size();
  std::size_t total = 0;
  std::map<std::string, std::string> found;  // tensor -> the shard it was found in
  for (std::size_t i = 0; i < m.shards.size(); ++i) {
    const safetensors_file shard(m.shard_path(i));
    for (const auto& t : shard.tensors()) {
      const auto [at, fresh] = found.emplace(t.name, m.shards[i]);
      if (!fresh)
        detail::fail(m.path, "tensor " + in_quotes(t.name) + " is in two shards, " + in_quotes(at->second) + " and " +
                                 in_quotes(m.shards[i]));
      const auto mapped = m.weight_map.find(t.name);
      if (mapped == m.weight_map.end())
        detail::fail(m.path, "tensor " + in_quotes(t.name) + " of shard " + in_quotes(m.shards[i]) + " is not in the weight_map");
      if (mapped->second != m.shards[i])
        detail::fail(m.path, "tensor " + in_quotes(t.name) + " is in shard " + in_quotes(m.shards[i]) +
                                 " but the weight_map says " + in_quotes(mapped->second));
    }
    total += shard.tensors().size();
  }
  for (const auto& [tensor, shard] : m.weight_map)
    if (!found.count(tensor))
      detail::fail(m.path, "weight_map lists tensor " + in_quotes(tensor) + " in " + in_quotes(shard) + ", which does not hold it");
  return total;
}

}  // namespace blockcast::io
