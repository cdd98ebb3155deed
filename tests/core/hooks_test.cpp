#include <gtest/gtest.h>

#include "headlab/core/errors.h"
#include "headlab/core/hooks.h"

namespace headlab {

TEST(HookRegistryTest, NamesFollowTransformerLens) {
  HookRegistry r(2);
  EXPECT_EQ(r.nameOf(r.idOf(1, LayerHook::Pattern)), "blocks.1.attn.hook_pattern");
  EXPECT_EQ(r.nameOf(r.idOf(0, LayerHook::ResidPre)), "blocks.0.hook_resid_pre");
  EXPECT_EQ(r.nameOf(r.idOf(0, LayerHook::MlpPost)), "blocks.0.mlp.hook_post");
  EXPECT_EQ(r.nameOf(r.idOf(GlobalHook::LnFinal)), "ln_final.hook_normalized");
  EXPECT_EQ(r.idOf("blocks.1.attn.hook_z"), r.idOf(1, LayerHook::Z));
  EXPECT_THROW(r.idOf("blocks.2.attn.hook_z"), InputError);
}

TEST(HookRegistryTest, RemovesHookWhenHandleDestroyed) {
  HookRegistry r(1);
  int calls = 0;
  at::Tensor t;
  {
    HookHandle h = r.add("blocks.0.attn.hook_z", [&](at::Tensor&, const HookContext&) { ++calls; });
    EXPECT_TRUE(h.active());
    r.run(r.idOf("blocks.0.attn.hook_z"), t);
    EXPECT_EQ(r.hookCount(), 1u);
  }
  r.run(r.idOf("blocks.0.attn.hook_z"), t);
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(r.hookCount(), 0u);
}

TEST(HookRegistryTest, MovedHandleKeepsOneRegistration) {
  HookRegistry r(1);
  HookHandle a = r.add("hook_embed", [](at::Tensor&, const HookContext&) {});
  HookHandle b = std::move(a);
  EXPECT_FALSE(a.active());
  EXPECT_TRUE(b.active());
  b.remove();
  EXPECT_EQ(r.hookCount(), 0u);
}

TEST(HookRegistryTest, GlobMatchesHookNames) {
  HookRegistry r(3);
  auto m = r.match("blocks.*.attn.hook_pattern");
  ASSERT_EQ(m.size(), 3u);
  EXPECT_EQ(m[2], "blocks.2.attn.hook_pattern");
  EXPECT_THROW(r.match("blocks.*.nothing"), InputError);
  EXPECT_TRUE(globMatch("a*c", "abbbc"));
  EXPECT_FALSE(globMatch("a*c", "abbb"));
  EXPECT_TRUE(globMatch("blocks.?.hook_*", "blocks.1.hook_resid_pre"));
}

TEST(HookRegistryTest, AxesDescribeEachActivation) {
  EXPECT_EQ(hookAxes("blocks.0.attn.hook_pattern"), (std::vector<std::string>{"batch", "head", "q_pos", "k_pos"}));
  EXPECT_EQ(hookAxes("blocks.0.attn.hook_k"), (std::vector<std::string>{"batch", "pos", "kv_head", "d_head"}));
  EXPECT_EQ(hookAxes("blocks.0.hook_resid_post"), (std::vector<std::string>{"batch", "pos", "d_model"}));
}

}  // namespace headlab
