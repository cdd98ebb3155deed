# Every source of the core libraries, listed once. core/CMakeLists.txt builds them; fuzz/CMakeLists.txt
# compiles HEADLAB_CORE_SOURCES again with sanitizers; tests/cuda/run.sh reads the runtime list to
# build the CUDA check with a PyTorch's own libtorch. Paths are relative to core/.

# The runtime: models, architectures, stored formats, tokenizers without PCRE2, patching and
# interventions. Needs libtorch and nlohmann-json only (what the GPU machine has).
set(HEADLAB_CORE_RUNTIME_SOURCES
  src/model/model_config.cpp
  src/model/model_weights.cpp
  src/model/hooks.cpp
  src/model/hooked_transformer.cpp
  src/model/generate.cpp
  src/model/incremental_runner.cpp
  src/model/system_memory.cpp
  src/model/vision_language.cpp
  src/archs/arch_registry.cpp
  src/archs/arch_decoder.cpp
  src/archs/arch_llama.cpp
  src/archs/arch_gpt2.cpp
  src/archs/arch_qwen3.cpp
  src/archs/arch_olmo2.cpp
  src/archs/arch_gemma.cpp
  src/archs/arch_phi3.cpp
  src/archs/arch_neox.cpp
  src/archs/arch_clip.cpp
  src/formats/dtypes.cpp
  src/formats/tensor_store.cpp
  src/formats/safetensors.cpp
  src/formats/llama2c_checkpoint.cpp
  src/tokenizers/tokenizer_score_bpe.cpp
  src/tokenizers/tokenizer_text.cpp
  src/interp/interventions.cpp
  src/interp/faithfulness.cpp
  src/interp/logit_lens.cpp
  src/interp/attention_tiles.cpp
  src/interp/prompt_sets.cpp
  src/patching/sweep_layouts.cpp
  src/patching/patching_common.cpp
  src/patching/batched.cpp
  src/patching/per_forward.cpp
  src/patching/path.cpp
  src/patching/attribution.cpp
)

# Loading by path (GGUF, byte-level BPE with PCRE2), start-up checks and traces (HDF5).
set(HEADLAB_CORE_IO_SOURCES
  src/model/startup.cpp
  src/model/model_loader.cpp
  src/formats/gguf.cpp
  src/tokenizers/tokenizer_bpe.cpp
  src/tokenizers/tokenizer_factory.cpp
  src/traces/h5.cpp
  src/traces/trace.cpp
  src/traces/activation_cache.cpp
  src/traces/isolated_call.cpp
  src/traces/provenance.cpp
  src/traces/tensor_export.cpp
)

set(HEADLAB_CORE_SOURCES ${HEADLAB_CORE_RUNTIME_SOURCES} ${HEADLAB_CORE_IO_SOURCES})

# The demo models' trainers (target headlab_demo) and the model resolver that opens them by name
# (target headlab_session).
set(HEADLAB_DEMO_SOURCES demo/demo_model.cpp demo/demo_vlm.cpp demo/training_util.cpp)
set(HEADLAB_SESSION_SOURCES session/model_session.cpp)
