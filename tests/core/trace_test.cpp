#include <gtest/gtest.h>

#include <c10/core/InferenceMode.h>

#include <filesystem>
#include <fstream>

#include <hdf5.h>

#include "headlab/core/errors.h"
#include "headlab/core/h5.h"
#include "headlab/core/trace.h"
#include "headlab/core/checkpoint_formats.h"
#include "shared_path.h"
#include "headlab/core/provenance.h"
#include "random_model.h"
#include "tensor_assert.h"

namespace headlab {

namespace fs = std::filesystem;

class TraceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir = fs::temp_directory_path() / ("headlab_trace_" + std::to_string(::getpid()) + "_" +
                                       ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir);
    fs::create_directories(dir);
  }
  void TearDown() override { fs::remove_all(dir); }
  std::string path(const std::string& n) { return (dir / n).string(); }
  size_t filesIn() { return static_cast<size_t>(std::distance(fs::directory_iterator(dir), fs::directory_iterator())); }
  c10::InferenceMode guard;
  fs::path dir;
};

TEST_F(TraceTest, RoundTripGivesIdenticalArraysAndAttributes) {
  at::manual_seed(3);
  at::Tensor pattern = at::softmax(at::randn({1, 4, 6, 6}), -1);
  at::Tensor resid = at::randn({1, 6, 32}) * 100;
  auto model = test::randomModel("llama");
  {
    TraceWriter w(path("t.h5"));
    w.writeModel(model.config(), "random", "test");
    w.writeInputs({1, 5, 7, 9, 11, 13}, {"<s>", " a", " b", "c", "\xC3\xA9", "\n"});
    w.writeActivation("blocks.0.attn.hook_pattern", pattern);
    w.writeActivation("blocks.1.hook_resid_post", resid);
    w.writeProbe("sinks", {{"eps", 0.3}, {"max_tokens", 64}, {"prompt_set", "builtin"}}, {{"alpha", at::ones({3, 4})}});
    w.writeInterventions(nlohmann::json::array({{{"kind", "zero"}, {"layer", 1}, {"heads", {2}}}}));
    w.commit();
  }
  TraceReader r(path("t.h5"));
  EXPECT_EQ(r.schemaVersion(), kTraceSchemaVersion);
  EXPECT_EQ(r.file().attrString("/", "schema"), "headlab.trace");
  EXPECT_EQ(r.file().attrInt("/model", "n_kv_heads"), 2);
  EXPECT_EQ(r.file().attrString("/model", "arch"), "llama");
  EXPECT_TRUE(at::equal(r.activation("blocks.0.attn.hook_pattern"), pattern));
  EXPECT_TRUE(at::equal(r.activation("blocks.1.hook_resid_post"), resid));
  EXPECT_EQ(r.axes("blocks.0.attn.hook_pattern"), (std::vector<std::string>{"batch", "head", "q_pos", "k_pos"}));
  EXPECT_EQ(r.file().chunkOf("/activations/blocks.0.attn.hook_pattern"), (std::vector<uint64_t>{1, 1, 6, 6}));
  EXPECT_TRUE(at::equal(r.headPattern("blocks.0.attn.hook_pattern", 0, 2), pattern[0][2]));
  EXPECT_EQ(r.tokens(), (std::vector<int64_t>{1, 5, 7, 9, 11, 13}));
  EXPECT_EQ(r.tokenStrings()[4], "\xC3\xA9");
  EXPECT_DOUBLE_EQ(r.file().attrDouble("/probes/sinks", "eps"), 0.3);
  EXPECT_EQ(r.file().attrInt("/probes/sinks", "max_tokens"), 64);
  EXPECT_EQ(r.file().attrString("/probes/sinks", "prompt_set"), "builtin");
  EXPECT_EQ(r.file().readFloats("/probes/sinks/alpha").size(), 12u);
  EXPECT_EQ(nlohmann::json::parse(r.file().readString("/interventions"))[0]["kind"], "zero");
  EXPECT_THROW(r.headPattern("blocks.0.attn.hook_pattern", 0, 4), InputError);
}

TEST_F(TraceTest, Float16AndGzipStorageRoundTripWithinHalfPrecision) {
  at::Tensor pattern = at::softmax(at::randn({1, 2, 5, 5}), -1);
  TraceOptions o;
  o.float16 = true;
  o.gzipLevel = 6;
  {
    TraceWriter w(path("h.h5"), o);
    w.writeActivation("blocks.0.attn.hook_pattern", pattern);
    w.commit();
  }
  TraceReader r(path("h.h5"));
  EXPECT_EQ(r.file().storageOf("/activations/blocks.0.attn.hook_pattern"), "float16");
  at::Tensor back = r.activation("blocks.0.attn.hook_pattern");
  test::expectTensorClose(back, pattern, 1e-2);
  EXPECT_TRUE(at::equal(back, pattern.to(at::kHalf).to(at::kFloat)));
}

TEST_F(TraceTest, InterruptedCaptureLeavesNoFileAndKeepsAnExistingOne) {
  auto model = test::randomModel("gpt2");
  std::vector<std::string> hooks = model.hooks().match("blocks.*.attn.hook_pattern");
  {
    std::ofstream(path("keep.h5")) << "precious";
  }
  // Cancel after the second activation: CancelledError, temp file removed, target untouched.
  {
    TraceOptions o;
    o.force = true;
    TraceWriter w(path("keep.h5"), o);
    EXPECT_THROW(captureToTrace(model, {1, 2, 3, 4}, hooks, w, [](double fraction, const std::string&) { return fraction < 0.5; }), CancelledError);
  }
  std::ifstream in(path("keep.h5"));
  std::string content((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_EQ(content, "precious");
  // A failure inside the run (an out-of-range token) leaves nothing at a new target either.
  {
    TraceWriter w(path("new.h5"));
    EXPECT_THROW(captureToTrace(model, {1, 2, 999}, hooks, w), InputError);
  }
  EXPECT_FALSE(fs::exists(path("new.h5")));
  EXPECT_EQ(filesIn(), 1u) << "no temporary file left behind";
}

TEST_F(TraceTest, RefusesToOverwriteWithoutForce) {
  std::ofstream(path("x.h5")) << "old";
  try {
    TraceWriter w(path("x.h5"));
    FAIL() << "overwrote";
  } catch (const IoError& e) {
    EXPECT_NE(std::string(e.what()).find("exists; pass --force to overwrite"), std::string::npos);
  }
}

TEST_F(TraceTest, CaptureStreamsEveryRequestedHook) {
  auto model = test::randomModel("llama");
  auto hooks = model.hooks().match("blocks.*.attn.hook_pattern");
  hooks.push_back("blocks.2.hook_resid_post");
  EXPECT_EQ(estimateCaptureBytes(model, hooks, 7), (3u * 4 * 7 * 7 + 7 * 32) * 4);
  {
    TraceWriter w(path("c.h5"));
    captureToTrace(model, {1, 2, 3, 4, 5, 6, 7}, hooks, w);
    w.commit();
  }
  TraceReader r(path("c.h5"));
  EXPECT_EQ(r.activations().size(), 4u);
  at::Tensor p = r.activation("blocks.1.attn.hook_pattern");
  test::expectTensorClose(p.sum(-1), at::ones({1, 4, 7}), 1e-4);
}

TEST_F(TraceTest, ReaderRejectsFilesThatAreNotTraces) {
  std::ofstream(path("junk.h5")) << "not hdf5 at all";
  EXPECT_THROW(TraceReader(path("junk.h5")), IoError);
}

// A dataspace declaring 2^40 token strings (chunked, nothing stored: a valid HDF5 file) must be
// refused before anything allocates 8 TB of pointers; the fuzzer found the same through corruption.
TEST_F(TraceTest, AnAbsurdDeclaredSizeIsAnErrorNotAnAllocation) {
  {
    h5::File f = h5::File::create(path("huge.h5"));
    f.setAttr("/", "schema", std::string("headlab.trace"));
    f.setAttr("/", "schema_version", int64_t{1});
    f.createGroup("/inputs");
    hsize_t dims = hsize_t(1) << 40, chunk = 1024;
    hid_t space = H5Screate_simple(1, &dims, nullptr);
    hid_t type = H5Tcopy(H5T_C_S1);
    H5Tset_size(type, H5T_VARIABLE);
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    H5Pset_chunk(dcpl, 1, &chunk);
    hid_t ds = H5Dcreate2(f.id(), "/inputs/token_strings", type, space, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    ASSERT_GE(ds, 0);
    H5Dclose(ds), H5Pclose(dcpl), H5Tclose(type), H5Sclose(space);
  }
  try {
    TraceReader r(path("huge.h5"));
    FAIL() << "no error";
  } catch (const IoError& e) {
    EXPECT_NE(std::string(e.what()).find("/inputs/token_strings: declares 1099511627776 elements, more than a "), std::string::npos)
        << e.what();
  }
}

// Inputs the trace fuzzer found (fuzz/regressions/trace): each is an error now, not a crash.
TEST_F(TraceTest, FuzzerFindingsAreErrorsNotCrashes) {
  const std::string dir = std::string(HEADLAB_SOURCE_DIR) + "/fuzz/regressions/trace/";
  auto message = [](const std::string& file) -> std::string {
    try {
      TraceReader r(file);
      for (const auto& hook : r.activations()) r.axes(hook), r.activation(hook);
      r.tokens(), r.tokenStrings();
    } catch (const IoError& e) {
      return e.what();
    }
    return "no error";
  };
  // libhdf5 1.10.8's H5HG_read segfaults on this file's corrupt global heap: the child that reads
  // the strings dies, the reader reports it.
  const std::string heap = message(dir + "h5hg_read_corrupt_global_heap.h5");
  EXPECT_NE(heap.find("h5hg_read_corrupt_global_heap.h5: corrupt HDF5 file: reading it crashed libhdf5 in a child process"),
            std::string::npos) << heap;
  // libhdf5 reads out of bounds in H5Aopen on this file's corrupt object header (looking up
  // schema_version; under ASan a SEGV, natively it may just fail): either way the child's read
  // meets it first and the reader answers with an error naming the file.
  const std::string header = message(dir + "attribute_open_corrupt_object_header.h5");
  EXPECT_EQ(header.find(dir + "attribute_open_corrupt_object_header.h5: "), 0u) << header;
  // libhdf5 returns a negative link-name length here; h5::File::children used to build a string from it.
  const std::string link = message(dir + "negative_link_name_length.h5");
  EXPECT_NE(link.find("negative_link_name_length.h5"), std::string::npos) << link;
  EXPECT_NE(link, "no error");
}

// SHA-256 against FIPS 180-4's examples and a file that spans the reader's 1 MiB chunks.
TEST(ProvenanceTest, Sha256MatchesTheStandardsExamples) {
  EXPECT_EQ(sha256Hex("", 0), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(sha256Hex("abc", 3), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  const std::string two = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
  EXPECT_EQ(sha256Hex(two.data(), two.size()), "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  const std::string path = ::testing::TempDir() + "/million_a.bin";
  std::ofstream(path, std::ios::binary) << std::string(1000000, 'a');
  EXPECT_EQ(sha256File(path), "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
  EXPECT_THROW(sha256File(path + ".missing"), IoError);
}

// Every trace carries its provenance: the root attribute and the sidecar written on commit, with the
// model's files hashed.
TEST_F(TraceTest, ProvenanceIsInTheFileAndItsSidecar) {
  const std::string file = path("provenance.h5");
  auto model = test::randomModel("llama");
  TraceOptions o;
  o.provenance.commandLine = "headlab-cli capture --test";
  o.provenance.seed = 7;
  {
    TraceWriter w(file, o);
    w.writeModel(model.config(), test::sharedPath("models/stories260k/stories260K.gguf"), "gguf");
    w.commit();
  }
  const nlohmann::json side = readJsonFile(file + ".provenance.json");
  EXPECT_EQ(side["command_line"], "headlab-cli capture --test");
  EXPECT_EQ(side["seed"], 7);
  EXPECT_EQ(side["model"]["files"][0]["sha256"], sha256File(test::sharedPath("models/stories260k/stories260K.gguf")));
  EXPECT_EQ(side["config"]["n_layers"], model.config().n_layers);
  TraceReader r(file);
  EXPECT_EQ(nlohmann::json::parse(r.file().attrString("/", "provenance")), side);
}

}  // namespace headlab

