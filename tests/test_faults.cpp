// SPDX-License-Identifier: MIT
// The fault table: what the command-line tool and the I/O layer do with hostile and careless
// input. Each section names the guarantee it proves (README, "Guarantees"); the shell test
// tests/fault_test.sh sends real signals to the binary.
#include "cli/commands.hpp"
#include "cli_test_files.hpp"

#include <catch2/catch.hpp>

#include <dirent.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <random>
#include <sstream>

namespace cli = blockcast::cli;
namespace io = blockcast::io;
namespace ptq = blockcast::ptq;
using blockcast::test::fresh_dir;
using blockcast::test::files_in;
using blockcast::test::random_matrix;

namespace {

std::string read_file(const std::string& path) {
  struct stat st {};
  if (::lstat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) return "<directory>";
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}
void write_file(const std::string& path, const std::string& bytes) { std::ofstream(path, std::ios::binary) << bytes; }

// The names and bytes of every file in a directory: a snapshot to compare before and after.
std::map<std::string, std::string> snapshot(const std::string& dir) {
  std::map<std::string, std::string> s;
  for (const auto& f : files_in(dir)) s[f] = read_file(dir + "/" + f);
  return s;
}

void write_model(const std::string& path, const std::vector<std::string>& names, unsigned seed = 1) {
  io::safetensors_writer out(path);
  for (const auto& name : names) {
    const ptq::matrix w = random_matrix(4, 64, seed++);
    out.add_f32(name, {4, 64}, blockcast::span<const float>(w.data(), static_cast<std::size_t>(w.size())));
  }
  out.commit();
}

// A safetensors file with a header of our own making (any JSON, any bytes after it).
void write_raw(const std::string& path, const std::string& header, const std::string& data) {
  std::string bytes(8, '\0');
  for (int i = 0; i < 8; ++i) bytes[static_cast<std::size_t>(i)] = static_cast<char>(static_cast<std::uint64_t>(header.size()) >> (8 * i));
  write_file(path, bytes + header + data);
}

// A sharded model: shards a.safetensors (w0, w1), b.safetensors (w2) and its index.
std::string write_sharded(const std::string& dir, const std::string& index_name = "model.safetensors.index.json") {
  write_model(dir + "/a.safetensors", {"w0", "w1"});
  write_model(dir + "/b.safetensors", {"w2"}, 7);
  write_file(dir + "/" + index_name, R"({"metadata": {"total_size": 1}, "weight_map": {"w0": "a.safetensors",
    "w1": "a.safetensors", "w2": "b.safetensors"}})");
  return dir + "/" + index_name;
}

cli::quantize_request request(const std::string& input, const std::string& output) {
  cli::quantize_request r;
  r.input = input;
  r.output = output;
  return r;
}

}  // namespace

TEST_CASE("fault 1: an output that is an input file (by inode, not name) is refused before any work", "[faults]") {
  const std::string dir = fresh_dir();
  const std::string index = write_sharded(dir);
  const auto before = snapshot(dir);
  SECTION("a second index next to the input would overwrite its shards") {
    CHECK_THROWS_WITH(cli::quantize_model(request(index, dir + "/q.safetensors.index.json")),
                      Catch::Contains("would overwrite the input file") && Catch::Contains("a.safetensors"));
  }
  SECTION("the input index itself") {
    CHECK_THROWS_WITH(cli::quantize_model(request(index, index)), Catch::Contains("would overwrite the input file"));
  }
  SECTION("a hard link and a symlink to an input shard, and the calibration file") {
    REQUIRE(::link((dir + "/a.safetensors").c_str(), (dir + "/hard.safetensors").c_str()) == 0);
    REQUIRE(::symlink((dir + "/a.safetensors").c_str(), (dir + "/soft.safetensors").c_str()) == 0);
    const auto with_links = snapshot(dir);
    CHECK_THROWS_WITH(cli::quantize_model(request(dir + "/a.safetensors", dir + "/hard.safetensors")),
                      Catch::Contains("would overwrite the input file"));
    auto calibrated = request(dir + "/b.safetensors", dir + "/soft.safetensors");
    calibrated.method = cli::method::gptq;
    calibrated.calibration = dir + "/a.safetensors";
    CHECK_THROWS_WITH(cli::quantize_model(calibrated), Catch::Contains("would overwrite the input file"));
    CHECK(snapshot(dir) == with_links);
    return;
  }
  SECTION("an output that is a directory or a FIFO") {
    REQUIRE(::mkdir((dir + "/d.safetensors").c_str(), 0700) == 0);
    CHECK_THROWS_WITH(cli::quantize_model(request(dir + "/b.safetensors", dir + "/d.safetensors")),
                      Catch::Contains("exists and is not a regular file"));
    REQUIRE(::rmdir((dir + "/d.safetensors").c_str()) == 0);
  }
  CHECK(snapshot(dir) == before);
}

TEST_CASE("fault 1: a single file may be replaced by its own quantized version, atomically", "[faults]") {
  const std::string dir = fresh_dir();
  write_model(dir + "/m.safetensors", {"w"});
  cli::quantize_model(request(dir + "/m.safetensors", dir + "/m.safetensors"));
  const io::safetensors_file f(dir + "/m.safetensors");
  CHECK(io::is_quantized(f, "w"));
  CHECK(files_in(dir) == std::vector<std::string>{"m.safetensors"});
}

TEST_CASE("fault 1: shard names are plain file names; NUL, control characters and paths are refused", "[faults]") {
  const std::string dir = fresh_dir(), out = fresh_dir();
  write_model(dir + "/a.safetensors", {"w0"});
  const std::string a_bytes = read_file(dir + "/a.safetensors");
  for (const std::string& bad : {std::string("a.safetensors\\u0000.x"), std::string("a\\u001b[2J.safetensors"),
                                std::string("sub/a.safetensors"), std::string(".."), std::string(""),
                                std::string("a.safetensors\\n")}) {
    write_file(dir + "/m.index.json", R"({"weight_map": {"w0": ")" + bad + R"("}})");
    INFO(bad);
    CHECK_THROWS_WITH(cli::quantize_model(request(dir + "/m.index.json", out + "/m.index.json")),
                      Catch::Contains("is not a plain file name"));
    CHECK(read_file(dir + "/a.safetensors") == a_bytes);
    CHECK(files_in(out).empty());
  }
}

TEST_CASE("fault 1: a failed run deletes no file it did not create; temporary names never collide", "[faults]") {
  const std::string dir = fresh_dir(), out = fresh_dir();
  write_model(dir + "/m.safetensors", {"w0", "w1"});
  // files that look like temporaries of an earlier version or of another program
  for (const char* name : {"/q.safetensors.partial", "/q.safetensors.tmp.1", "/.blockcast-staging.q.safetensors.1.2"})
    write_file(out + name, "someone else's");
  const auto before = snapshot(out);
  auto req = request(dir + "/m.safetensors", out + "/q.safetensors");
  req.method = cli::method::ed;
  req.calibration = dir + "/m.safetensors";  // has no '<w>.inputs': the run fails after starting
  CHECK_THROWS_WITH(cli::quantize_model(req), Catch::Contains("w0.inputs"));
  CHECK(snapshot(out) == before);

  // a shard named like another shard's old temporary ("<shard>.partial") keeps its tensors
  const std::string in = fresh_dir(), out2 = fresh_dir();
  write_model(in + "/x.safetensors", {"first"});
  write_model(in + "/x.safetensors.partial", {"second"}, 5);
  write_file(in + "/m.index.json", R"({"weight_map": {"first": "x.safetensors", "second": "x.safetensors.partial"}})");
  cli::quantize_model(request(in + "/m.index.json", out2 + "/m.index.json"));
  CHECK(io::safetensors_file(out2 + "/x.safetensors").contains("first"));
  CHECK_FALSE(io::safetensors_file(out2 + "/x.safetensors").contains("second"));
  CHECK(io::safetensors_file(out2 + "/x.safetensors.partial").contains("second"));
}

TEST_CASE("fault 2: a sharded output is all new or all old, whichever step fails", "[faults]") {
  const std::string in = fresh_dir(), out = fresh_dir();
  const std::string index = write_sharded(in);
  const std::string out_index = out + "/model.safetensors.index.json";
  auto req = request(index, out_index);
  req.format = "mxfp8_e4m3";
  cli::quantize_model(req);  // the old output set
  write_file(out + "/unrelated.txt", "kept");
  const auto old_set = snapshot(out);

  // record every file-system step of a successful run
  req.format = "nvfp4";
  std::vector<std::string> steps;
  io::testing::fault_hook = [&](const char* step, const std::string& path) {
    steps.push_back(std::string(step) + " " + io::file_name_of(path));
    return 0;
  };
  {
    const std::string probe = fresh_dir();  // the same run: over an old set of the same files
    auto old = request(index, probe + "/model.safetensors.index.json");
    old.format = "mxfp8_e4m3";
    io::testing::fault_hook = nullptr;
    cli::quantize_model(old);
    io::testing::fault_hook = [&](const char* step, const std::string& path) {
      steps.push_back(std::string(step) + " " + io::file_name_of(path));
      return 0;
    };
    auto same = req;
    same.output = old.output;
    cli::quantize_model(same);
  }
  io::testing::fault_hook = nullptr;
  REQUIRE(steps.size() >= 12);  // staging, 2 shards + index written, journal, links, renames, commit

  for (std::size_t k = 0; k < steps.size(); ++k) {
    std::size_t count = 0;
    io::testing::fault_hook = [&](const char*, const std::string&) { return count++ == k ? EIO : 0; };
    INFO("failing step " << k << ": " << steps[k]);
    bool failed = false;
    try {
      cli::quantize_model(req);
    } catch (const io::io_error&) {
      failed = true;
    }
    io::testing::fault_hook = nullptr;
    if (failed) {
      CHECK(snapshot(out) == old_set);  // no staging directory, no backup, no new shard
    } else {  // only a failed hard link (the backup is moved instead) and a refused O_DIRECT
              // (the bytes go through the page cache) have a way around them
      CHECK((steps[k].rfind("link ", 0) == 0 || steps[k].rfind("direct ", 0) == 0));
      CHECK(io::describe_quantized(io::safetensors_file(out + "/b.safetensors"), "w2").format == "nvfp4");
      auto old = req;
      old.format = "mxfp8_e4m3";
      cli::quantize_model(old);
      CHECK(snapshot(out) == old_set);
    }
  }
  cli::quantize_model(req);  // and with nothing failing, the new set replaces the old one
  const io::safetensors_file a(out + "/a.safetensors");
  CHECK(io::describe_quantized(a, "w0").format == "nvfp4");
  CHECK(read_file(out + "/unrelated.txt") == "kept");
}

TEST_CASE("fault 2-3: a run killed in the middle of its commit is rolled back by the next run", "[faults]") {
  const std::string dir = fresh_dir();
  write_file(dir + "/s1", "old 1");
  write_file(dir + "/s2", "old 2");
  write_file(dir + "/set", "old index");
  const auto old_set = snapshot(dir);
  for (int kill_at = 1; kill_at <= 6; ++kill_at) {  // die at the kill_at-th link or rename
    const pid_t child = ::fork();
    REQUIRE(child >= 0);
    if (child == 0) {
      int count = 0;
      io::testing::fault_hook = [&](const char* step, const std::string&) {
        if ((std::string(step) == "link" || std::string(step) == "rename") && ++count == kill_at) ::_exit(9);
        return 0;
      };
      io::output_set set(dir, "set", dir + "/set");
      write_file(set.stage("s1"), "new 1");
      write_file(set.stage("s2"), "new 2");
      write_file(set.stage("set"), "new index");
      set.commit();
      ::_exit(0);
    }
    int status = 0;
    ::waitpid(child, &status, 0);
    INFO("killed at step " << kill_at);
    REQUIRE(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 9);
    CHECK(snapshot(dir) != old_set);  // a staging directory was left behind
    { io::output_set next(dir, "set", dir + "/set"); }  // the next run on the same output recovers
    CHECK(snapshot(dir) == old_set);
  }
  // a rollback that cannot put a backup back keeps it (and says where) for the next run
  {
    int renames = 0;
    io::testing::fault_hook = [&](const char* step, const std::string&) {
      const std::string s = step;
      return (s == "rename" && ++renames == 2) || s == "restore" ? EIO : 0;
    };
    io::output_set set(dir, "set", dir + "/set");
    write_file(set.stage("s1"), "new 1");
    write_file(set.stage("s2"), "new 2");
    CHECK_THROWS_WITH(set.commit(), Catch::Contains("could not all be put back") && Catch::Contains(".blockcast-staging.set."));
    io::testing::fault_hook = nullptr;
    CHECK(read_file(dir + "/s1") == "new 1");  // not yet restored, but not lost:
    { io::output_set next(dir, "set", dir + "/set"); }
    CHECK(snapshot(dir) == old_set);  // the next run put it back
  }
  // someone else's staging-like directory, and a live run's, are left alone
  REQUIRE(::mkdir((dir + "/.blockcast-staging.set.1.1").c_str(), 0700) == 0);
  write_file(dir + "/.blockcast-staging.set.1.1/owner", "not ours");
  io::output_set live(dir, "set", dir + "/set");
  { io::output_set next(dir, "set", dir + "/set"); }
  CHECK(files_in(dir).size() == old_set.size() + 2);
}

TEST_CASE("fault 4: hostile names, nesting and file types end in an error, not a crash or a hang", "[faults]") {
  const std::string dir = fresh_dir();
  SECTION("a 100,000-byte tensor name under the default pattern and under --include") {
    const std::string name(100000, 'a');
    write_model(dir + "/long.safetensors", {name});
    auto req = request(dir + "/long.safetensors", dir + "/q.safetensors");
    CHECK(cli::quantize_model(req).size() == 1);  // the default pattern matches without a regex
    req.include = "a+";
    CHECK_THROWS_WITH(cli::quantize_model(req), Catch::Contains("too long to match --include/--exclude"));
  }
  SECTION("deeply nested JSON in an index's metadata and in a header") {
    write_model(dir + "/a.safetensors", {"w0"});
    const std::string deep = std::string(100000, '[') + std::string(100000, ']');
    write_file(dir + "/m.index.json", R"({"metadata": {"x": )" + deep + R"(}, "weight_map": {"w0": "a.safetensors"}})");
    CHECK_THROWS_WITH(cli::quantize_model(request(dir + "/m.index.json", dir + "/o.index.json")), Catch::Contains("nested deeper"));
    write_raw(dir + "/deep.safetensors", R"({"__metadata__": )" + deep + "}", "");
    CHECK_THROWS_WITH(io::safetensors_file(dir + "/deep.safetensors"), Catch::Contains("nested deeper"));
  }
  SECTION("a FIFO as input or as index is refused without waiting for a writer") {
    REQUIRE(::mkfifo((dir + "/fifo.safetensors").c_str(), 0600) == 0);
    REQUIRE(::mkfifo((dir + "/fifo.index.json").c_str(), 0600) == 0);
    CHECK_THROWS_WITH(cli::quantize_model(request(dir + "/fifo.safetensors", dir + "/q.safetensors")),
                      Catch::Contains("not a regular file"));
    CHECK_THROWS_WITH(cli::quantize_model(request(dir + "/fifo.index.json", dir + "/q.index.json")),
                      Catch::Contains("not a regular file"));
  }
}

TEST_CASE("fault 4: an input truncated by another process while mapped is an error, not SIGBUS", "[faults]") {
  const std::string dir = fresh_dir();
  write_model(dir + "/m.safetensors", {"w0", "w1", "w2", "w3"});
  const pid_t child = ::fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    io::install_signal_cleanup("test");
    ::close(2);  // the message is checked by tests/fault_test.sh; here: the exit status
    const io::safetensors_file f(dir + "/m.safetensors");
    if (::truncate((dir + "/m.safetensors").c_str(), 100) != 0) ::_exit(3);
    volatile std::uint8_t sum = 0;
    for (const auto& t : f.tensors())
      for (const auto b : f.bytes(t)) sum = static_cast<std::uint8_t>(sum + b);
    ::_exit(0);  // not reached: the pages beyond the new end fault
  }
  int status = 0;
  ::waitpid(child, &status, 0);
  REQUIRE(WIFEXITED(status));  // not killed by a signal
  CHECK(WEXITSTATUS(status) == 1);

  // a change that the pages survive is caught before anything is committed
  write_model(dir + "/m.safetensors", {"w0"});
  const io::safetensors_file f(dir + "/m.safetensors");
  ::usleep(20000);
  write_model(dir + "/other.safetensors", {"w0"}, 9);
  REQUIRE(::rename((dir + "/other.safetensors").c_str(), (dir + "/m.safetensors").c_str()) == 0);
  CHECK_NOTHROW(f.check_unchanged());  // replaced by rename: this mapping still reads the old file, whole
  const io::safetensors_file g(dir + "/m.safetensors");
  std::ofstream(dir + "/m.safetensors", std::ios::app) << "y";
  CHECK_THROWS_WITH(g.check_unchanged(), Catch::Contains("changed by another process"));
}

TEST_CASE("fault 4b: a child of fork() ended by a signal removes its own temporaries, not its parent's", "[faults]") {
  const std::string dir = fresh_dir(), parents = dir + "/parent.tmp", childs = dir + "/child.tmp";
  write_file(parents, "the parent is still writing this");
  const int slot = io::detail::register_slot(io::detail::slot_kind::temp_file, parents);
  REQUIRE(slot >= 0);
  const pid_t child = ::fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    io::install_signal_cleanup("test");
    std::ofstream(childs) << "the child's own";
    if (io::detail::register_slot(io::detail::slot_kind::temp_file, childs) < 0) ::_exit(3);
    ::raise(SIGTERM);
    ::_exit(4);  // not reached: the handler dies of the signal
  }
  int status = 0;
  ::waitpid(child, &status, 0);
  io::detail::unregister_slot(slot);
  REQUIRE(WIFSIGNALED(status));
  CHECK(WTERMSIG(status) == SIGTERM);
  CHECK(::access(childs.c_str(), F_OK) != 0);   // the child's temporary: removed
  CHECK(::access(parents.c_str(), F_OK) == 0);  // the parent's: left to the parent
}

TEST_CASE("fault 5: an index must agree with its shards tensor for tensor", "[faults]") {
  const std::string dir = fresh_dir(), out = fresh_dir();
  write_model(dir + "/a.safetensors", {"w0", "w1"});
  write_model(dir + "/b.safetensors", {"w2", "w1"}, 5);
  const std::pair<const char*, const char*> cases[] = {
      {R"({"weight_map": {"w0": "a.safetensors", "w1": "a.safetensors", "w2": "b.safetensors"}})", "is in two shards"},
      {R"({"weight_map": {"w0": "a.safetensors"}})", "'w1' of shard 'a.safetensors' is not in the weight_map"},
      {R"({"weight_map": {"w0": "a.safetensors", "w1": "a.safetensors", "w9": "a.safetensors"}})", "which does not hold it"},
  };
  write_model(dir + "/c.safetensors", {"w2"}, 5);
  write_file(dir + "/wrong.index.json", R"({"weight_map": {"w0": "a.safetensors", "w1": "c.safetensors", "w2": "c.safetensors"}})");
  CHECK_THROWS_WITH(cli::quantize_model(request(dir + "/wrong.index.json", out + "/o.index.json")),
                    Catch::Contains("'w1' is in shard 'a.safetensors' but the weight_map says 'c.safetensors'"));
  for (const auto& [text, message] : cases) {
    write_file(dir + "/m.index.json", text);
    INFO(text);
    CHECK_THROWS_WITH(cli::quantize_model(request(dir + "/m.index.json", out + "/o.index.json")), Catch::Contains(message));
  }
  CHECK(files_in(out).empty());
}

TEST_CASE("fault 6: NaN, Inf or overflowing calibration inputs are errors naming tensor and position", "[faults]") {
  ptq::matrix x = random_matrix(64, 40, 3);
  const ptq::matrix w = random_matrix(8, 40, 4);
  for (const float bad : {NAN, INFINITY, 1e30f}) {
    x(17, 23) = bad;
    INFO(bad);
    CHECK_THROWS_WITH(ptq::input_stats::from(x), Catch::Contains("[sample 17, channel 23]"));
    CHECK_THROWS_AS(ptq::input_stats::from(x), blockcast::invalid_argument);
    ptq::input_stats stats(40);
    CHECK_THROWS_AS(stats.add(x), blockcast::invalid_argument);
    CHECK_THROWS_WITH(ptq::gptq<blockcast::mxfp4>(w, x), Catch::Contains("[sample 17, channel 23]"));
  }
  for (Eigen::Index n = 17; n < 23; ++n) x(n, 23) = 9e18f;  // each square finite, their sum not
  CHECK_THROWS_WITH(ptq::gptq<blockcast::mxfp4>(w, x), Catch::Contains("overflows"));
  CHECK_THROWS_WITH(ptq::input_stats::from(x), Catch::Contains("overflow"));

  // through the tool: the file, the tensor and the position
  const std::string dir = fresh_dir();
  write_model(dir + "/m.safetensors", {"w"});
  ptq::matrix inputs = random_matrix(100, 64, 5);
  inputs(3, 7) = NAN;
  io::safetensors_writer c(dir + "/calib.safetensors");
  c.add_f32("w.inputs", {100, 64}, blockcast::span<const float>(inputs.data(), static_cast<std::size_t>(inputs.size())));
  c.commit();
  for (const std::string method : {"ed", "gptq"}) {
    auto req = request(dir + "/m.safetensors", dir + "/q.safetensors");
    req.method = cli::parse_choice(cli::methods, method, "method");
    req.calibration = dir + "/calib.safetensors";
    CHECK_THROWS_WITH(cli::quantize_model(req), Catch::Contains("calib.safetensors") && Catch::Contains("'w.inputs'") &&
                                                    Catch::Contains("[sample 3, channel 7] is NaN"));
  }
  CHECK(files_in(dir) == std::vector<std::string>{"calib.safetensors", "m.safetensors"});
}

TEST_CASE("fault 6: a NaN weight stays in its block, and the report has no SQNR for it", "[faults]") {
  const std::string dir = fresh_dir();
  ptq::matrix w = random_matrix(4, 64, 1);
  w(1, 5) = NAN;
  ptq::matrix x = random_matrix(200, 64, 2);
  {
    io::safetensors_writer m(dir + "/m.safetensors");
    m.add_f32("w", {4, 64}, blockcast::span<const float>(w.data(), 256));
    m.commit();
    io::safetensors_writer c(dir + "/calib.safetensors");
    c.add_f32("w.inputs", {200, 64}, blockcast::span<const float>(x.data(), static_cast<std::size_t>(x.size())));
    c.commit();
  }
  for (const std::string method : {"rtn", "ed", "gptq"}) {
    auto req = request(dir + "/m.safetensors", dir + "/q.safetensors");
    req.method = cli::parse_choice(cli::methods, method, "method");
    if (method != "rtn") req.calibration = dir + "/calib.safetensors";
    const auto reports = cli::quantize_model(req);
    INFO(method);
    CHECK(std::isnan(reports[0].weight_sqnr_db));  // printed as NaN/Inf, never as a number of dB
    const io::safetensors_file q(req.output);
    const auto p = io::read_quantized<blockcast::mxfp4>(q, "w");
    std::vector<float> out(p.size());
    blockcast::dequantize(p, out.data());
    std::size_t nan_count = 0;
    for (const float v : out) nan_count += std::isnan(v);
    CHECK(nan_count == 32);  // exactly the block of the NaN, not the row or the layer
  }
}

TEST_CASE("fault 7: inspect checks descriptions against the bytes; names are printed escaped", "[faults]") {
  const std::string dir = fresh_dir();
  write_model(dir + "/m.safetensors", {"w"});
  auto req = request(dir + "/m.safetensors", dir + "/q.safetensors");
  req.format = "nvfp4";
  cli::quantize_model(req);
  const std::string good = read_file(dir + "/q.safetensors");
  auto corrupt = [&](const std::string& from, const std::string& to) {
    std::string bytes = good;
    const auto at = bytes.find(from);
    REQUIRE(at != std::string::npos);
    bytes.replace(at, from.size(), to);
    write_file(dir + "/bad.safetensors", bytes);
  };
  std::ostringstream listing;
  corrupt(R"(\"shape\":[4,64])", R"(\"shape\":[4,96])");
  CHECK_THROWS_WITH(cli::inspect_model(dir + "/bad.safetensors", listing), Catch::Contains("scale bytes (U8) for a nvfp4 4 x 96"));
  corrupt(R"(\"format\":\"nvfp4\")", R"(\"format\":\"nvfp5\")");
  CHECK_THROWS_WITH(cli::inspect_model(dir + "/bad.safetensors", listing), Catch::Contains("unknown format 'nvfp5'"));
  // the tensor scale: 0 and NaN are refused (the F32 is the last 4 bytes of the file)
  for (const std::string& scale : {std::string("\0\0\0\0", 4), std::string("\0\0\xc0\x7f", 4)}) {
    write_file(dir + "/bad.safetensors", good.substr(0, good.size() - 4) + scale);
    CHECK_THROWS_WITH(cli::inspect_model(dir + "/bad.safetensors", listing), Catch::Contains("is not finite and > 0"));
    CHECK_THROWS_WITH(cli::dequantize_model({dir + "/bad.safetensors", dir + "/d.safetensors", cli::out_dtype::f32, 1}),
                      Catch::Contains("is not finite and > 0"));
  }
  // control characters in names reach neither the terminal nor a second line
  write_model(dir + "/esc.safetensors", {"evil\x1b[2J\nname"});
  std::ostringstream escaped;
  cli::inspect_model(dir + "/esc.safetensors", escaped);
  CHECK_THAT(escaped.str(), Catch::Contains("evil\\x1b[2J\\nname"));
  CHECK(escaped.str().find('\x1b') == std::string::npos);
  write_raw(dir + "/esc2.safetensors", R"({"bad\u001b\nname": {"dtype": "F32", "shape": [2], "data_offsets": [0, 4]}})", "12345678");
  try {
    io::safetensors_file f(dir + "/esc2.safetensors");
    FAIL("accepted");
  } catch (const io::io_error& e) {
    CHECK(std::string(e.what()).find('\n') == std::string::npos);
    CHECK_THAT(e.what(), Catch::Contains("bad\\x1b\\nname"));
  }
}

TEST_CASE("fault 7: errors name the output the user gave, never a temporary", "[faults]") {
  const std::string dir = fresh_dir();
  write_model(dir + "/m.safetensors", {"w"});
  io::testing::fault_hook = [](const char* step, const std::string&) { return std::string(step) == "write" ? ENOSPC : 0; };
  try {
    cli::quantize_model(request(dir + "/m.safetensors", dir + "/q.safetensors"));
    FAIL("no error");
  } catch (const io::io_error& e) {
    CHECK_THAT(e.what(), Catch::StartsWith(dir + "/q.safetensors: ") && Catch::Contains("No space left"));
    CHECK_THAT(e.what(), !Catch::Contains("staging") && !Catch::Contains(".tmp."));
  }
  io::testing::fault_hook = nullptr;
  CHECK(files_in(dir) == std::vector<std::string>{"m.safetensors"});
}

TEST_CASE("fault 8: what the reader accepts the writer writes; a model's '<w>.scales' tensor is kept", "[faults]") {
  const std::string dir = fresh_dir();
  write_raw(dir + "/empty-name.safetensors", R"({"": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}})", "1234");
  CHECK_THROWS_WITH(io::safetensors_file(dir + "/empty-name.safetensors"), Catch::Contains("empty name"));
  write_raw(dir + "/huge.safetensors",
            R"({"z": {"dtype": "F32", "shape": [0, 9223372036854775807, 4], "data_offsets": [0, 0]}})", "");
  CHECK_THROWS_WITH(io::safetensors_file(dir + "/huge.safetensors"), Catch::Contains("shape overflows"));
  io::safetensors_stream_writer writer(dir + "/w.safetensors");
  CHECK_THROWS_WITH(writer.declare("z", io::dtype::f32, {0, 9223372036854775807ull, 4}), Catch::Contains("shape overflows"));
  CHECK_THROWS_WITH(writer.declare("", io::dtype::f32, {1}), Catch::Contains("invalid tensor name"));

  // the model has its own "w.scales" and "w.tensor_scale" (1-D: copied, not quantized)
  {
    io::safetensors_writer m(dir + "/m.safetensors");
    const ptq::matrix w = random_matrix(4, 64, 1);
    const float extra[3] = {1, 2, 3};
    m.add_f32("w", {4, 64}, blockcast::span<const float>(w.data(), 256));
    m.add_f32("w.scales", {3}, blockcast::span<const float>(extra, 3));
    m.add_f32("w.tensor_scale", {3}, blockcast::span<const float>(extra, 3));
    m.commit();
  }
  for (const std::string format : {"mxfp4", "nvfp4"}) {
    auto req = request(dir + "/m.safetensors", dir + "/q.safetensors");
    req.format = format;
    cli::quantize_model(req);
    std::ostringstream listing;
    cli::inspect_model(req.output, listing);
    INFO(format << "\n" << listing.str());
    CHECK_THAT(listing.str(), Catch::Contains("3 tensors (1 quantized)"));
    cli::dequantize_model({req.output, dir + "/d.safetensors", cli::out_dtype::f32, 1});
    const io::safetensors_file d(dir + "/d.safetensors");
    CHECK(d.tensors().size() == 3);
    CHECK(d.to_float(d.find("w.scales")) == std::vector<float>{1, 2, 3});
    CHECK(d.to_float(d.find("w.tensor_scale")) == std::vector<float>{1, 2, 3});
  }
}

TEST_CASE("fault 9: 80,000 tensors in one file are read, written and quantized", "[faults]") {
  const std::string dir = fresh_dir();
  {
    io::safetensors_stream_writer out(dir + "/many.safetensors");
    for (int i = 0; i < 80000; ++i) out.declare("t" + std::to_string(i), io::dtype::f32, {1});
    const float v = 1.0f;
    for (int i = 0; i < 80000; ++i)
      out.write("t" + std::to_string(i), blockcast::span<const std::uint8_t>(reinterpret_cast<const std::uint8_t*>(&v), 4));
    out.commit();
  }
  const io::safetensors_file f(dir + "/many.safetensors");
  CHECK(f.tensors().size() == 80000);
  CHECK(f.find("t79999").elements() == 1);
  CHECK(cli::quantize_model(request(dir + "/many.safetensors", dir + "/q.safetensors")).size() == 80000);
}
