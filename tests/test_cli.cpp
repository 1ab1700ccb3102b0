// SPDX-License-Identifier: MIT
// The command-line tool's commands (tools/cli/commands.hpp): a quantized model decodes to
// exactly what the PTQ layer computes, sharded models map shard for shard, and a failure
// leaves no output behind.
#include "cli/commands.hpp"
#include "cli_test_files.hpp"
#include "blockcast/io/input_stats_file.hpp"

#include <catch2/catch.hpp>

#include <dirent.h>
#include <unistd.h>

#include <cmath>
#include <fstream>
#include <random>
#include <sstream>

namespace cli = blockcast::cli;
namespace io = blockcast::io;
namespace ptq = blockcast::ptq;
using blockcast::test::file_bytes;
using blockcast::test::fresh_dir;
using blockcast::test::files_in;
using blockcast::test::random_matrix;

namespace {

void add(io::safetensors_writer& out, const std::string& name, const ptq::matrix& m, std::vector<std::uint64_t> shape) {
  out.add_f32(name, std::move(shape), blockcast::span<const float>(m.data(), static_cast<std::size_t>(m.size())));
}

// A small model: a 4-D "convolution", a linear layer with a partial last block, two biases.
struct toy_model {
  ptq::matrix conv = random_matrix(8, 36, 1), linear = random_matrix(5, 70, 2), conv_bias = random_matrix(1, 8, 3),
              linear_bias = random_matrix(1, 5, 4);
  void write(const std::string& path) const {
    io::safetensors_writer out(path);
    add(out, "conv.weight", conv, {8, 4, 3, 3});
    add(out, "conv.bias", conv_bias, {8});
    add(out, "fc.weight", linear, {5, 70});
    add(out, "fc.bias", linear_bias, {5});
    out.set_metadata("note", "kept");
    out.commit();
  }
  void write_calibration(const std::string& path, bool with_fc = true) const {
    io::safetensors_writer out(path);
    add(out, "conv.weight.inputs", random_matrix(200, 36, 5), {200, 36});
    if (with_fc) add(out, "fc.weight.inputs", random_matrix(300, 70, 6), {300, 70});
    out.commit();
  }
};

std::vector<float> floats(const io::safetensors_file& f, const std::string& name) { return f.to_float(f.find(name)); }

template <class Format>
std::vector<float> decoded(const io::safetensors_file& f, const std::string& name) {
  const auto p = io::read_quantized<Format>(f, name);
  std::vector<float> out(p.rows() * p.cols());
  blockcast::dequantize(p, out.data());
  return out;
}

bool same_bits(const std::vector<float>& a, const float* b) {
  return std::memcmp(a.data(), b, a.size() * sizeof(float)) == 0;
}

}  // namespace

TEST_CASE("cli quantize: RTN, ED and GPTQ tensors decode to exactly what the PTQ layer gives", "[cli]") {
  const std::string dir = fresh_dir();
  const toy_model model;
  model.write(dir + "/model.safetensors");
  model.write_calibration(dir + "/calib.safetensors");
  for (const std::string method : {"rtn", "ed", "gptq"}) {
    cli::quantize_request req;
    req.input = dir + "/model.safetensors";
    req.output = dir + "/q-" + method + ".safetensors";
    req.format = "nvfp4";
    req.method = cli::parse_choice(cli::methods, method, "method");
    if (method != "rtn") req.calibration = dir + "/calib.safetensors";
    const auto reports = cli::quantize_model(req);
    REQUIRE(reports.size() == 4);
    CHECK(reports[0].stored == "nvfp4 " + method);
    CHECK(reports[1].stored == "copied (F32)");
    CHECK(std::isfinite(reports[0].weight_sqnr_db));
    CHECK(std::isnan(reports[1].weight_sqnr_db));

    const io::safetensors_file q(req.output);
    const io::safetensors_file calib(dir + "/calib.safetensors");
    CHECK(q.metadata().at("note") == "kept");
    const auto d = io::describe_quantized(q, "conv.weight");
    CHECK(d.shape == std::vector<std::uint64_t>{8, 4, 3, 3});
    CHECK(d.method == method);
    for (const auto& [name, w] : {std::pair<std::string, const ptq::matrix*>{"conv.weight", &model.conv}, {"fc.weight", &model.linear}}) {
      ptq::quantized_matrix<blockcast::nvfp4> expected;
      if (method == "rtn") {
        expected = ptq::rtn<blockcast::nvfp4>(*w);
      } else {
        const auto values = floats(calib, name + ".inputs");
        const ptq::matrix x = Eigen::Map<const ptq::matrix>(values.data(), static_cast<Eigen::Index>(values.size()) / w->cols(), w->cols());
        expected = method == "ed" ? ptq::error_diffusion<blockcast::nvfp4>(*w, ptq::input_stats::from(x))
                                  : ptq::gptq<blockcast::nvfp4>(*w, x);
      }
      INFO(method << " " << name);
      CHECK(same_bits(decoded<blockcast::nvfp4>(q, name), expected.dequantized.data()));
    }
    CHECK(floats(q, "fc.bias") == floats(io::safetensors_file(req.input), "fc.bias"));
  }
}

namespace {
std::vector<std::uint8_t> stored_as(io::dtype type, const ptq::matrix& m) {  // F32, or rounded to BF16 / F16
  std::vector<std::uint8_t> out;
  for (Eigen::Index i = 0; i < m.size(); ++i) {
    std::uint32_t u;
    std::memcpy(&u, m.data() + i, 4);
    if (type == io::dtype::f32) {
      for (int b = 0; b < 4; ++b) out.push_back(static_cast<std::uint8_t>(u >> (8 * b)));
      continue;
    }
    std::uint16_t h;
    if (type == io::dtype::bf16) {
      h = static_cast<std::uint16_t>(u >> 16);
    } else {  // F16 of a value in (2^-14, 1): exponent rebased, fraction truncated (tests need any F16)
      const std::uint32_t exponent = (u >> 23) & 0xff;
      h = static_cast<std::uint16_t>(((u >> 16) & 0x8000u) | ((exponent - 112) << 10) | ((u >> 13) & 0x3ffu));
      if (exponent < 113) h = static_cast<std::uint16_t>((u >> 16) & 0x8000u);  // tiny values to zero
    }
    out.push_back(static_cast<std::uint8_t>(h)), out.push_back(static_cast<std::uint8_t>(h >> 8));
  }
  return out;
}
}  // namespace

TEST_CASE("cli quantize: the same bytes for every slice size, chunk size and thread count", "[cli]") {
  // BF16, F16 and F32 weights, rows that are not whole blocks, an odd-sized tensor first so
  // that the others start unaligned in the file
  const std::string dir = fresh_dir();
  {
    io::safetensors_writer out(dir + "/model.safetensors");
    const ptq::matrix odd = random_matrix(3, 5, 20), a = random_matrix(37, 100, 21), b = random_matrix(64, 96, 22),
                      c = random_matrix(9, 300, 23);
    out.add_owned("odd", io::dtype::bf16, {3, 5}, stored_as(io::dtype::bf16, odd));
    out.add_owned("a.weight", io::dtype::bf16, {37, 100}, stored_as(io::dtype::bf16, a));
    out.add_owned("b.weight", io::dtype::f16, {64, 96}, stored_as(io::dtype::f16, b));
    out.add_owned("c.weight", io::dtype::f32, {9, 300}, stored_as(io::dtype::f32, c));
    out.commit();
    io::safetensors_writer calib(dir + "/calib.safetensors");
    for (const auto& [name, cols] : {std::pair<std::string, Eigen::Index>{"odd", 5}, {"a.weight", 100}, {"b.weight", 96}, {"c.weight", 300}})
      add(calib, name + ".inputs", random_matrix(2 * cols, cols, 30), {static_cast<std::uint64_t>(2 * cols), static_cast<std::uint64_t>(cols)});
    calib.commit();
  }
  const io::safetensors_file model(dir + "/model.safetensors");
  for (const auto& f : blockcast::preset_formats()) {
    for (const std::string method : {"rtn", "ed"}) {
      if (method == "ed" && f.name != "mxfp4" && f.name != "nvfp4") continue;  // ED's rows: two formats are enough
      cli::quantize_request req;
      req.input = dir + "/model.safetensors";
      req.format = std::string(f.name);
      req.method = cli::parse_choice(cli::methods, method, "method");
      if (method == "ed") req.calibration = dir + "/calib.safetensors";
      req.threads = 1;
      req.output = dir + "/reference.safetensors";
      cli::quantize_model(req);
      const std::string reference = file_bytes(req.output);
      if (method == "rtn") {  // the reference itself: each tensor as the whole-tensor API quantizes it
        const io::safetensors_file q(req.output);
        blockcast::visit_format(req.format, [&](auto tag) {
          using F = typename decltype(tag)::type;
          for (const char* name : {"odd", "a.weight", "b.weight", "c.weight"}) {
            const auto& t = model.find(name);
            const auto values = model.to_float(t);
            const auto want = blockcast::quantize<F>(values.data(), t.shape[0], t.shape[1]);
            const auto got = io::read_quantized<F>(q, name);
            INFO(req.format << " " << name);
            CHECK(std::equal(got.codes().begin(), got.codes().end(), want.codes().begin(), want.codes().end()));
            CHECK(std::equal(got.scales().begin(), got.scales().end(), want.scales().begin(), want.scales().end()));
            CHECK(got.tensor_scale() == want.tensor_scale());
          }
        });
      }
      for (unsigned threads : {1u, 2u, 3u})
        for (const cli::detail::pipeline_sizes sizes : {cli::detail::pipeline_sizes{1, 1, 1}, {100, 16, 7}, {1000, 333, 4096}, {}}) {
          req.threads = threads;
          req.sizes = sizes;
          req.output = dir + "/out.safetensors";
          cli::quantize_model(req);
          INFO(req.format << " " << method << ", " << threads << " threads, slices of " << sizes.slice_values << " values, chunks of "
                          << sizes.chunk_values << ", amax reads of " << sizes.amax_values);
          CHECK(file_bytes(req.output) == reference);
        }
    }
  }
}

TEST_CASE("cli quantize: --include and --exclude choose the tensors; dequantize restores shapes", "[cli]") {
  const std::string dir = fresh_dir();
  toy_model().write(dir + "/model.safetensors");
  cli::quantize_request req;
  req.input = dir + "/model.safetensors";
  req.output = dir + "/q.safetensors";
  req.format = "mxfp8_e4m3";
  req.include = "^fc\\.";
  cli::quantize_model(req);
  {
    const io::safetensors_file q(req.output);
    CHECK(io::is_quantized(q, "fc.weight"));
    CHECK_FALSE(io::is_quantized(q, "conv.weight"));
    CHECK(q.find("conv.weight").type == io::dtype::f32);
  }
  req.include = ".*";
  req.exclude = "conv";
  cli::quantize_model(req);
  const io::safetensors_file q(req.output);
  CHECK(io::is_quantized(q, "fc.weight"));
  CHECK_FALSE(io::is_quantized(q, "conv.weight"));

  for (const std::string type : {"f32", "bf16"}) {
    cli::dequantize_request d{req.output, dir + "/d.safetensors", cli::parse_choice(cli::out_dtypes, type, "dtype"), 2};
    cli::dequantize_model(d);
    const io::safetensors_file out(d.output);
    CHECK(out.tensors().size() == 4);  // no .scales left
    CHECK(out.find("fc.weight").shape == std::vector<std::uint64_t>{5, 70});
    CHECK(out.find("fc.weight").type == (type == "f32" ? io::dtype::f32 : io::dtype::bf16));
    CHECK(floats(out, "fc.weight") == decoded<blockcast::mxfp8_e4m3>(q, "fc.weight"));  // MXFP8 values are exact in BF16
    CHECK_FALSE(out.metadata().count("blockcast.fc.weight"));
  }
}

TEST_CASE("cli: a sharded model maps shard for shard, with a matching index", "[cli]") {
  const std::string in = fresh_dir(), out = fresh_dir();
  const toy_model model;
  {
    io::safetensors_writer a(in + "/model-00001-of-00002.safetensors");
    add(a, "conv.weight", model.conv, {8, 4, 3, 3});
    add(a, "conv.bias", model.conv_bias, {8});
    a.commit();
    io::safetensors_writer b(in + "/model-00002-of-00002.safetensors");
    add(b, "fc.weight", model.linear, {5, 70});
    b.commit();
    std::ofstream index(in + "/model.safetensors.index.json");
    index << R"({"metadata": {"total_size": 1}, "weight_map": {"conv.weight": "model-00001-of-00002.safetensors",
      "conv.bias": "model-00001-of-00002.safetensors", "fc.weight": "model-00002-of-00002.safetensors"}})";
  }
  cli::quantize_request req;
  req.input = in + "/model.safetensors.index.json";
  req.output = out + "/model.safetensors.index.json";
  std::vector<std::size_t> seen;
  const auto reports = cli::quantize_model(req, [&](const std::string&, std::size_t done, std::size_t total, std::uint64_t) {
    CHECK(total == 3);
    seen.push_back(done);
  });
  CHECK(reports.size() == 3);
  CHECK(seen == std::vector<std::size_t>{0, 1, 2, 3});
  CHECK(files_in(out) == std::vector<std::string>{"model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors",
                                                   "model.safetensors.index.json"});
  std::ifstream index_file(req.output);
  const auto index = nlohmann::json::parse(index_file);
  CHECK(index.at("weight_map").at("fc.weight.scales") == "model-00002-of-00002.safetensors");
  CHECK(index.at("weight_map").at("conv.weight") == "model-00001-of-00002.safetensors");
  CHECK(index.at("weight_map").size() == 5);
  const io::safetensors_file shard2(out + "/model-00002-of-00002.safetensors");
  CHECK(same_bits(decoded<blockcast::mxfp4>(shard2, "fc.weight"), ptq::rtn<blockcast::mxfp4>(model.linear).dequantized.data()));
  std::uint64_t data_bytes = 0;
  for (const char* shard : {"/model-00001-of-00002.safetensors", "/model-00002-of-00002.safetensors"}) {
    const io::safetensors_file f(out + shard);
    for (const auto& t : f.tensors()) data_bytes += t.end - t.begin;
  }
  CHECK(index.at("metadata").at("total_size") == data_bytes);

  std::ostringstream listing;
  cli::inspect_model(req.output, listing);
  CHECK_THAT(listing.str(), Catch::Contains("3 tensors (2 quantized) in 2 files"));

  const std::string back = fresh_dir();
  cli::dequantize_model({req.output, back + "/model.safetensors.index.json", cli::out_dtype::f32, 1});
  CHECK(files_in(back).size() == 3);
}

namespace {
// A model of `shards` shards, one linear layer and one bias in each, and its index.
std::string sharded_model(std::size_t shards, unsigned seed = 40) {
  const std::string dir = fresh_dir();
  nlohmann::json weight_map;
  for (std::size_t k = 0; k < shards; ++k) {
    char name[64];
    std::snprintf(name, sizeof name, "model-%05zu-of-%05zu.safetensors", k + 1, shards);
    io::safetensors_writer w(dir + "/" + name);
    const std::string layer = "layers." + std::to_string(k);
    add(w, layer + ".weight", random_matrix(6, 64, static_cast<unsigned>(seed + k)), {6, 64});
    add(w, layer + ".bias", random_matrix(1, 6, static_cast<unsigned>(60 + k)), {6});
    w.commit();
    weight_map[layer + ".weight"] = name;
    weight_map[layer + ".bias"] = name;
  }
  std::ofstream(dir + "/model.safetensors.index.json") << nlohmann::json{{"metadata", {{"total_size", 0}, {"note", "kept"}}},
                                                                        {"weight_map", weight_map}}.dump();
  return dir;
}
void run_part(const std::string& in, const std::string& out, const std::string& part, const std::string& format = "nvfp4") {
  cli::quantize_request req;
  req.input = in + "/model.safetensors.index.json";
  req.output = out + "/model.safetensors.index.json";
  req.format = format;
  req.part = part;
  cli::quantize_model(req);
}
}  // namespace

TEST_CASE("cli: a model converted in 3 parts and merged is byte for byte one run's output", "[cli]") {
  const std::string in = sharded_model(5), whole = fresh_dir(), split = fresh_dir();
  run_part(in, whole, "");
  for (const char* part : {"2/3", "3/3", "1/3"}) run_part(in, split, part);  // any order, as a scheduler runs them
  // each part wrote only its shards (5 shards: 2, 2, 1) and its manifest
  auto listing = files_in(split);
  CHECK(listing.size() == 5 + 3);
  CHECK(std::count_if(listing.begin(), listing.end(), [](const std::string& f) { return f.find(".part-") != std::string::npos; }) == 3);
  CHECK_THROWS_WITH(cli::quantize_model([&] {
                      cli::quantize_request r;
                      r.input = in + "/model-00001-of-00005.safetensors";
                      r.output = split + "/x.safetensors";
                      r.part = "1/2";
                      return r;
                    }()),
                    Catch::Contains("--part splits a sharded model"));
  cli::merge_parts(split + "/model.safetensors.index.json");
  for (const auto& name : files_in(whole)) {
    INFO(name);
    CHECK(file_bytes(split + "/" + name) == file_bytes(whole + "/" + name));
  }
  CHECK(files_in(split).size() == files_in(whole).size() + 3);  // the manifests stay: merge deletes nothing
}

TEST_CASE("cli merge: a missing, foreign, damaged or misplaced part is refused and no index is written", "[cli]") {
  const std::string in = sharded_model(4);
  const std::string index = "/model.safetensors.index.json";
  auto three_parts = [&](const std::string& format_of_part_2) {
    const std::string out = fresh_dir();
    run_part(in, out, "1/3");
    run_part(in, out, "2/3", format_of_part_2);
    run_part(in, out, "3/3");
    return out;
  };
  auto refused = [&](const std::string& out, const std::string& why) {
    CHECK_THROWS_WITH(cli::merge_parts(out + index), Catch::Contains(why));
    CHECK(::access((out + index).c_str(), F_OK) != 0);
  };
  SECTION("missing") {
    const std::string out = three_parts("nvfp4");
    REQUIRE(std::remove((out + index + ".part-2-of-3.json").c_str()) == 0);
    refused(out, "part 2 of 3 is missing");
  }
  SECTION("none at all") { refused(fresh_dir(), "no part manifests"); }
  SECTION("foreign: another format") { refused(three_parts("mxfp4"), "made by a different run than part 1: run.format differs"); }
  SECTION("foreign: another model") {
    // a fine-tune of the same model: the same names, shapes and headers, other weights; its
    // part brought over whole (manifest and shard)
    const std::string out = three_parts("nvfp4"), other = sharded_model(4, 99), elsewhere = fresh_dir();
    run_part(other, elsewhere, "3/3");
    for (const std::string& name : {index + ".part-3-of-3.json", std::string("/model-00004-of-00004.safetensors")})
      REQUIRE(std::rename((elsewhere + name).c_str(), (out + name).c_str()) == 0);
    refused(out, "made by a different run than part 1: run.input_shards differs");
  }
  SECTION("a split into another number of parts next to it") {
    const std::string out = three_parts("nvfp4");
    run_part(in, out, "1/2");
    refused(out, "manifests of splits into 2 and 3 parts");
  }
  SECTION("a damaged shard") {
    const std::string out = three_parts("nvfp4");
    {
      std::fstream f(out + "/model-00003-of-00004.safetensors", std::ios::in | std::ios::out | std::ios::binary);
      f.seekp(-1, std::ios::end);
      f.put('\x5a');
    }
    refused(out, "differs from what part 2 wrote");
  }
  SECTION("a truncated shard") {
    const std::string out = three_parts("nvfp4");
    REQUIRE(::truncate((out + "/model-00004-of-00004.safetensors").c_str(), 100) == 0);
    refused(out, "differs from what part 3 wrote");
  }
  SECTION("a manifest that lists another part's shard") {
    const std::string out = three_parts("nvfp4");
    const std::string path = out + index + ".part-1-of-3.json";
    auto m = nlohmann::json::parse(file_bytes(path));
    m["shards"][0]["name"] = "model-00004-of-00004.safetensors";
    std::ofstream(path) << m.dump();
    refused(out, "does not belong to part 1 of 3");
  }
  SECTION("a manifest that is not one") {
    const std::string out = three_parts("nvfp4");
    std::ofstream(out + index + ".part-2-of-3.json") << "[1, 2";
    refused(out, "not a blockcast part manifest for part 2 of 3");
  }
  SECTION("bad --part values") {
    for (const char* bad : {"0/3", "4/3", "3", "/3", "1/", "a/b", "1/0", "1/100001", "-1/3", "1/3/4"})
      CHECK_THROWS_AS(cli::parse_part(bad), blockcast::invalid_argument);
  }
}

TEST_CASE("cli: a failure leaves no output behind", "[cli]") {
  const std::string dir = fresh_dir();
  const toy_model model;
  model.write(dir + "/model.safetensors");
  model.write_calibration(dir + "/calib.safetensors", /*with_fc=*/false);
  cli::quantize_request req;
  req.input = dir + "/model.safetensors";
  req.output = dir + "/out.safetensors";
  req.method = cli::method::ed;
  req.calibration = dir + "/calib.safetensors";
  // fc.weight has no inputs in the calibration file: the error names the file and tensor
  CHECK_THROWS_WITH(cli::quantize_model(req), Catch::Contains("calib.safetensors") && Catch::Contains("fc.weight.inputs"));
  CHECK(files_in(dir) == std::vector<std::string>{"calib.safetensors", "model.safetensors"});

  // the same in the second shard of a sharded model: the first shard's output is removed too
  const std::string out = fresh_dir();
  {
    io::safetensors_writer a(dir + "/a.safetensors");
    add(a, "conv.weight", model.conv, {8, 36});
    a.commit();
    io::safetensors_writer b(dir + "/b.safetensors");
    add(b, "fc.weight", model.linear, {5, 70});
    b.commit();
    std::ofstream index(dir + "/m.index.json");
    index << R"({"weight_map": {"conv.weight": "a.safetensors", "fc.weight": "b.safetensors"}})";
  }
  req.input = dir + "/m.index.json";
  req.output = out + "/m.index.json";
  CHECK_THROWS_AS(cli::quantize_model(req), io::io_error);
  CHECK(files_in(out).empty());

  // wrong calibration shape, unknown format, method without calibration, output kind mismatch
  model.write_calibration(dir + "/calib.safetensors");
  req.input = dir + "/model.safetensors";
  req.output = dir + "/out.safetensors";
  {
    io::safetensors_writer c(dir + "/bad_calib.safetensors");
    add(c, "conv.weight.inputs", random_matrix(10, 35, 7), {10, 35});
    c.commit();
  }
  req.calibration = dir + "/bad_calib.safetensors";
  CHECK_THROWS_WITH(cli::quantize_model(req), Catch::Contains("has shape 10x35 (F32), expected N x 36"));
  req.calibration.clear();
  CHECK_THROWS_AS(cli::quantize_model(req), blockcast::invalid_argument);
  req.method = cli::method::rtn;
  req.format = "mxfp3";
  CHECK_THROWS_AS(cli::quantize_model(req), blockcast::unknown_format);
  req.format = "mxfp4";
  req.output = dir + "/out.index.json";
  CHECK_THROWS_WITH(cli::quantize_model(req), Catch::Contains("single-file model's output"));
  req.output = dir + "/out.safetensors";
  req.include = "([";
  CHECK_THROWS_WITH(cli::quantize_model(req), Catch::Contains("bad --include/--exclude regex"));
  CHECK_FALSE(std::ifstream(dir + "/out.safetensors").good());
}

TEST_CASE("cli: bad sharded indexes are rejected with the file named", "[cli]") {
  const std::string dir = fresh_dir();
  const std::pair<const char*, const char*> cases[] = {
      {"{}", "weight_map"},
      {"not json", "not a safetensors index"},
      {R"({"weight_map": {"w": "../escape.safetensors"}})", "is not a plain file name in the index's directory"},
      {R"({"weight_map": {}})", "lists no shards"},
      {R"({"weight_map": {"w": 3}})", "is not a file name"},
  };
  int i = 0;
  for (const auto& [text, message] : cases) {
    const std::string path = dir + "/bad" + std::to_string(i++) + ".index.json";
    std::ofstream(path) << text;
    cli::quantize_request req;
    req.input = path;
    req.output = dir + "/out.index.json";
    INFO(text);
    CHECK_THROWS_WITH(cli::quantize_model(req), Catch::Contains(path) && Catch::Contains(message));
  }
}

TEST_CASE("cli formats lists every preset", "[cli]") {
  std::ostringstream s;
  cli::list_formats(s);
  for (const auto& f : blockcast::preset_formats()) CHECK_THAT(s.str(), Catch::Contains(std::string(f.name)));
}

TEST_CASE("cli quantize: --calibration takes stored input statistics as well as raw inputs", "[cli][input_stats]") {
  const std::string dir = fresh_dir();
  // fc: K = 70 (the default statistics are exact up to K = 1024); wide: K = 1100 (sketched)
  constexpr std::size_t wide_k = ptq::input_stats::exact_channels + 76;
  const ptq::matrix fc = random_matrix(5, 70, 2), wide = random_matrix(6, wide_k, 7);
  const ptq::matrix fc_inputs = random_matrix(300, 70, 6), wide_inputs = random_matrix(400, wide_k, 8);
  {
    io::safetensors_writer out(dir + "/model.safetensors");
    add(out, "fc.weight", fc, {5, 70});
    add(out, "wide.weight", wide, {6, wide_k});
    out.commit();
    io::safetensors_writer raw(dir + "/inputs.safetensors");
    add(raw, "fc.weight.inputs", fc_inputs, {300, 70});
    add(raw, "wide.weight.inputs", wide_inputs, {400, wide_k});
    raw.commit();
    io::safetensors_writer stats(dir + "/stats.safetensors");
    io::add_input_stats(stats, "fc.weight", ptq::input_stats::from(fc_inputs));
    io::add_input_stats(stats, "wide.weight", ptq::input_stats::from(wide_inputs));
    stats.commit();
  }
  cli::quantize_request req;
  req.input = dir + "/model.safetensors";
  req.format = "mxfp4";
  req.method = cli::method::ed;
  req.threads = 2;
  auto run = [&](const std::string& calibration, const std::string& output) {
    req.calibration = dir + "/" + calibration;
    req.output = dir + "/" + output;
    return cli::quantize_model(req);
  };
  SECTION("ED from statistics gives the codes ED from the raw inputs gives") {
    run("inputs.safetensors", "from_inputs.safetensors");
    const auto reports = run("stats.safetensors", "from_stats.safetensors");
    const io::safetensors_file a(dir + "/from_inputs.safetensors"), b(dir + "/from_stats.safetensors");
    for (const char* name : {"fc.weight", "wide.weight"}) {
      INFO(name);
      CHECK(decoded<blockcast::mxfp4>(a, name) == decoded<blockcast::mxfp4>(b, name));
    }
    for (const auto& r : reports) {  // no inputs: no output SQNR, and none claimed
      CHECK(std::isnan(r.output_sqnr_db));
      CHECK_FALSE(r.calibrated);
    }
  }
  SECTION("GPTQ from exact statistics runs; from sketched ones it is refused, saying why") {
    req.method = cli::method::gptq;
    req.include = "^fc";
    run("stats.safetensors", "gptq_fc.safetensors");
    const auto w = decoded<blockcast::mxfp4>(io::safetensors_file(dir + "/gptq_fc.safetensors"), "fc.weight");
    CHECK(w.size() == 5u * 70u);
    req.include = ".*";
    try {
      run("stats.safetensors", "gptq_all.safetensors");
      FAIL("GPTQ ran on sketched statistics");
    } catch (const std::exception& e) {
      const std::string message = e.what();
      INFO(message);
      CHECK(message.find("wide.weight") != std::string::npos);
      CHECK(message.find("sketched") != std::string::npos);
    }
    CHECK_FALSE(blockcast::test::file_bytes(dir + "/gptq_all.safetensors").size() > 0);  // nothing written
  }
  SECTION("statistics of the wrong width are refused") {
    io::safetensors_writer bad(dir + "/bad.safetensors");
    io::add_input_stats(bad, "fc.weight", ptq::input_stats::from(random_matrix(50, 71, 9)));
    bad.commit();
    req.include = "^fc";
    CHECK_THROWS_WITH(run("bad.safetensors", "bad_out.safetensors"), Catch::Contains("K = 71"));
  }
}
