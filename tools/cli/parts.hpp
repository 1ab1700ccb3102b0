// SPDX-License-Identifier: MIT
// Splitting a sharded model's conversion into parts that run anywhere (a Slurm array, GNU
// parallel over ssh, a Kubernetes Indexed Job), and merging them (docs/scale_out.md).
//
// Part i of n takes a fixed, contiguous run of the input's shards (shard k of S belongs to
// part k*n/S + 1, in the index's shard order), writes them with a manifest
// `<index>.part-<i>-of-<n>.json`: the run's identity (the input index's metadata, the size,
// header checksum and sampled-content checksum of every input shard and of the calibration
// file, the options, the version) and
// each written shard's size and CRC-32. `blockcast merge` checks that parts 1..n are all
// there, come from the same run, cover every shard once and that every shard still has its
// recorded size and checksum, then writes the output index all or nothing: the same bytes as
// one run over the whole model.
#pragma once

#include <dirent.h>
#include <zlib.h>

#include <nlohmann/json.hpp>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <algorithm>
#include <map>
#include <string>
#include <vector>

#include "blockcast/error.hpp"
#include "blockcast/io/json.hpp"
#include "blockcast/io/mapped_file.hpp"
#include "blockcast/io/model_files.hpp"
#include "blockcast/io/names.hpp"
#include "blockcast/io/output_set.hpp"
#include "blockcast/io/safetensors.hpp"
#include "blockcast/version.hpp"

namespace blockcast::cli {

/// Which part of a split conversion a run does: `index` of `count` (1-based); count 0 is the
/// whole model.
struct part_choice {
  unsigned index = 0, count = 0;
  bool whole() const { return count == 0; }
  /// Whether shard k (0-based, of `shards`) belongs to this part.
  bool takes(std::size_t k, std::size_t shards) const { return whole() || k * count / shards + 1 == index; }
};

inline constexpr unsigned max_parts = 100000;
inline constexpr int manifest_version = 1;

/// Parses "i/n" (1 <= i <= n <= 100000); throws invalid_argument saying what is wrong.
inline part_choice parse_part(const std::string& text) {
  const auto slash = text.find('/');
  auto number = [&](const std::string& s) -> unsigned long {
    if (s.empty() || s.size() > 6 || s.find_first_not_of("0123456789") != std::string::npos) return 0;
    return std::stoul(s);
  };
  const unsigned long i = slash == std::string::npos ? 0 : number(text.substr(0, slash)),
                      n = slash == std::string::npos ? 0 : number(text.substr(slash + 1));
  if (i == 0 || n == 0 || i > n || n > max_parts)
    blockcast::detail::fail<invalid_argument>("--part '" + io::printable(text, 40) + "': expected I/N with 1 <= I <= N <= " +
                                              std::to_string(max_parts) + ", e.g. --part 2/8");
  return {static_cast<unsigned>(i), static_cast<unsigned>(n)};
}

/// The manifest's file name for part `index` of `count` of the output index `index_name`.
inline std::string manifest_name(const std::string& index_name, unsigned index, unsigned count) {
  return index_name + ".part-" + std::to_string(index) + "-of-" + std::to_string(count) + ".json";
}

namespace detail {

/// CRC-32 (zlib's) of a whole file, read with pread (io::mapped_file::read).
inline std::uint32_t file_crc32(const std::string& path, std::uint64_t* size = nullptr) {
  const io::mapped_file file(path);  // a regular file, or an io_error naming it
  std::vector<unsigned char> buffer(std::size_t{1} << 20);
  uLong crc = ::crc32_z(0L, Z_NULL, 0);
  for (std::uint64_t at = 0; at < file.size(); at += buffer.size()) {
    const auto n = static_cast<std::size_t>(std::min<std::uint64_t>(buffer.size(), file.size() - at));
    file.read(at, n, buffer.data());
    crc = ::crc32_z(crc, buffer.data(), static_cast<z_size_t>(n));
  }
  if (size) *size = file.size();
  return static_cast<std::uint32_t>(crc);
}

/// What identifies an input file across machines without reading all of it: its size, the
/// CRC-32 of its safetensors header (names, types, shapes, offsets of every tensor) and the
/// CRC-32 of 64 samples of 64 KiB spread evenly over the file (two fine-tunes of one model
/// have the same header but differ in every sample).
inline nlohmann::json input_identity(const std::string& path) {
  const io::safetensors_file validated(path);  // a valid header, so its length can be trusted
  const io::mapped_file file(path);
  std::vector<unsigned char> buffer;
  auto crc_of = [&](std::uint64_t at, std::uint64_t n, uLong crc) {
    buffer.resize(static_cast<std::size_t>(n));
    file.read(at, buffer.size(), buffer.data());
    return ::crc32_z(crc, buffer.data(), static_cast<z_size_t>(buffer.size()));
  };
  const std::uint64_t size = file.size();
  std::uint8_t length[8];
  file.read(0, 8, length);
  std::uint64_t header = 0;
  for (int i = 0; i < 8; ++i) header |= static_cast<std::uint64_t>(length[i]) << (8 * i);
  const uLong header_crc = crc_of(0, 8 + header, ::crc32_z(0L, Z_NULL, 0));
  constexpr std::uint64_t samples = 64, sample = 64 << 10;
  uLong sample_crc = ::crc32_z(0L, Z_NULL, 0);
  for (std::uint64_t k = 0; k < samples; ++k) {
    const std::uint64_t at = size <= sample ? 0 : (size - sample) * k / (samples - 1);
    sample_crc = crc_of(at, std::min(size, sample), sample_crc);
  }
  return {{"size", size}, {"header_crc32", static_cast<std::uint32_t>(header_crc)}, {"sample_crc32", static_cast<std::uint32_t>(sample_crc)}};
}

/// The output index of a sharded model: the input index's metadata with the total size of the
/// written data, and every tensor of every written shard mapped to it. `shards`: (file name,
/// path to read it from) in shard order.
inline std::string index_text(const nlohmann::json& metadata, const std::vector<std::pair<std::string, std::string>>& shards) {
  nlohmann::json weight_map = nlohmann::json::object();
  std::uint64_t total = 0;
  for (const auto& [name, path] : shards) {
    const io::safetensors_file written(path);
    for (const auto& t : written.tensors()) {
      weight_map[t.name] = name;
      total += t.end - t.begin;
    }
  }
  nlohmann::json index = {{"metadata", metadata}, {"weight_map", weight_map}};
  index["metadata"]["total_size"] = total;
  return index.dump(2) + "\n";
}

// The first key (depth-first) at which two JSON values differ, for "made by a different run".
inline std::string first_difference(const nlohmann::json& a, const nlohmann::json& b, const std::string& path = "run") {
  if (a.is_object() && b.is_object()) {
    for (const auto& [key, value] : a.items())
      if (!b.contains(key)) return path + "." + key;
      else if (value != b[key]) return first_difference(value, b[key], path + "." + key);
    for (const auto& [key, value] : b.items())
      if (!a.contains(key)) return path + "." + key;
  }
  return path;
}

}  // namespace detail

/// Merges the parts of a split conversion next to `output` (a model.safetensors.index.json):
/// validates their manifests and shards, then writes the index all or nothing.
inline void merge_parts(const std::string& output) {
  if (!io::is_index_path(output))
    throw io::file_error(output, "merge writes a sharded model's index: the output must be .../model.safetensors.index.json");
  const std::string dir = io::directory_of(output), index_name = io::file_name_of(output);
  // the manifests present: <index>.part-<i>-of-<n>.json
  std::map<unsigned, std::map<unsigned, std::string>> found;  // n -> i -> file name
  const std::string prefix = index_name + ".part-";
  if (DIR* d = ::opendir(dir.c_str())) {
    while (const dirent* e = ::readdir(d)) {
      const std::string name = e->d_name;
      if (name.rfind(prefix, 0) != 0 || name.size() < prefix.size() + 5 || name.substr(name.size() - 5) != ".json") continue;
      const std::string middle = name.substr(prefix.size(), name.size() - prefix.size() - 5);  // "<i>-of-<n>"
      const auto of = middle.find("-of-");
      if (of == std::string::npos) continue;
      try {
        const part_choice p = parse_part(middle.substr(0, of) + "/" + middle.substr(of + 4));
        if (manifest_name(index_name, p.index, p.count) == name) found[p.count][p.index] = name;
      } catch (const invalid_argument&) {
      }
    }
    ::closedir(d);
  } else {
    throw io::file_error(output, "cannot read the directory '" + io::printable(dir) + "': " + std::strerror(errno));
  }
  if (found.empty())
    throw io::file_error(output, "no part manifests (" + io::in_quotes(prefix + "I-of-N.json") +
                                 ") next to it: run blockcast quantize ... --part I/N -o " + io::printable(output) + " first");
  if (found.size() > 1)
    throw io::file_error(output, "manifests of splits into " + std::to_string(found.begin()->first) + " and " +
                                 std::to_string(std::next(found.begin())->first) +
                                 " parts are both next to it: remove the ones that do not belong to this model");
  const unsigned count = found.begin()->first;
  const auto& present = found.begin()->second;
  for (unsigned i = 1; i <= count; ++i)
    if (!present.count(i))
      throw io::file_error(output, "part " + std::to_string(i) + " of " + std::to_string(count) + " is missing (no " +
                                   manifest_name(index_name, i, count) + "): run it with --part " + std::to_string(i) + "/" +
                                   std::to_string(count));
  nlohmann::json run;
  std::vector<std::pair<std::string, std::string>> shards;  // name, path
  std::map<std::string, unsigned> shard_part;
  for (const auto& [i, name] : present) {
    const std::string path = dir + "/" + name;
    nlohmann::json m;
    try {
      m = io::parse_json(io::read_regular_file(path, std::uint64_t{64} << 20));
      if (!m.is_object() || m.value("blockcast_part_manifest", 0) != manifest_version || m.at("part") != i ||
          m.at("parts") != count || !m.at("run").is_object() || !m.at("shards").is_array() ||
          !m.at("run").at("input_shards").is_array())
        throw std::runtime_error("unexpected content");
    } catch (const io::io_error&) {
      throw;
    } catch (const std::exception& e) {
      throw io::file_error(path, std::string("not a blockcast part manifest for part ") + std::to_string(i) + " of " +
                                 std::to_string(count) + " (" + e.what() + ")");
    }
    if (run.is_null()) run = m["run"];
    else if (m["run"] != run)
      throw io::file_error(path, "part " + std::to_string(i) + " was made by a different run than part " +
                                 std::to_string(present.begin()->first) + ": " + detail::first_difference(run, m["run"]) +
                                 " differs (every part must convert the same input with the same options)");
    const auto& inputs = run["input_shards"];
    for (const auto& s : m["shards"]) {
      std::string shard;
      std::uint64_t size = 0;
      std::uint32_t crc = 0;
      try {
        shard = s.at("name").get<std::string>(), size = s.at("size").get<std::uint64_t>(), crc = s.at("crc32").get<std::uint32_t>();
      } catch (const std::exception& e) {
        throw io::file_error(path, std::string("a shard entry is malformed: ") + e.what());
      }
      std::size_t k = 0;
      while (k < inputs.size() && inputs[k].value("name", "") != shard) ++k;
      if (k == inputs.size() || !io::is_plain_file_name(shard) || !part_choice{i, count}.takes(k, inputs.size()))
        throw io::file_error(path, "shard " + io::in_quotes(shard) + " does not belong to part " + std::to_string(i) + " of " + std::to_string(count));
      if (!shard_part.emplace(shard, i).second) throw io::file_error(path, "shard " + io::in_quotes(shard) + " is listed twice");
      std::uint64_t actual = 0;
      const std::uint32_t actual_crc = detail::file_crc32(dir + "/" + shard, &actual);
      if (actual != size || actual_crc != crc)
        throw io::file_error(dir + "/" + shard, "differs from what part " + std::to_string(i) + " wrote (size " + std::to_string(actual) +
                                                " vs " + std::to_string(size) + ", CRC-32 " + std::to_string(actual_crc) + " vs " +
                                                std::to_string(crc) + "): changed or copied incompletely since; run that part again");
    }
  }
  const auto& inputs = run["input_shards"];
  for (std::size_t k = 0; k < inputs.size(); ++k) {
    const std::string shard = inputs[k].value("name", "");
    if (!shard_part.count(shard))
      throw io::file_error(output, "shard " + io::in_quotes(shard) + " (of part " + std::to_string(k * count / inputs.size() + 1) +
                                   ") is in no manifest");
    shards.emplace_back(shard, dir + "/" + shard);
  }
  io::output_set set(dir, index_name, output);
  set.put_text(index_name, detail::index_text(run.value("index_metadata", nlohmann::json::object()), shards));
  set.commit();
}

}  // namespace blockcast::cli
