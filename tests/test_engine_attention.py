"""Engine tests: attention summaries, one head recomputed by hand against the model, logit lens, generated tokens,
and the offline bertviz HTML."""

from __future__ import annotations

import json
import math
import re

import pytest
import torch

from components.figures.bertviz import (
    MAX_CELLS,
    default_layers,
    head_view_html,
    layers_within_budget,
    model_view_html,
)
from components.figures.lines import block_flow_figure
from engine.attention import (
    attention_facts,
    block_flow,
    head_arithmetic,
    head_metric,
    head_overview,
    head_view,
    masked_mass,
    run_attention,
    sink_share,
    token_attention,
    token_view,
)
from engine.logit_lens import LensResult, logit_lens

PARIS = "The capital of France is"


@pytest.fixture(scope="module")
def paris_run(real_lm):
    return run_attention(real_lm, real_lm.encode(PARIS))


# ------------------------------------------------------------------------------------------- hand computation
@pytest.mark.parametrize(("layer", "head"), [(0, 0), (2, 4), (15, 8), (29, 5)])
def test_hand_arithmetic_equals_model_attention_real(real_lm, paris_run, layer, head):
    calc = head_arithmetic(real_lm, paris_run, layer, head)
    assert calc.max_weight_diff < 1e-5
    assert calc.max_output_diff < 1e-4
    torch.testing.assert_close(calc.weights, paris_run.attentions[layer, head], atol=1e-5, rtol=0)
    # The steps are consistent with each other: scale, mask, softmax, weighted sum.
    torch.testing.assert_close(calc.scaled, calc.scores / math.sqrt(64))
    assert torch.isinf(calc.masked.triu(1)[calc.masked.triu(1) != 0]).all()
    assert torch.allclose(calc.weights.sum(-1), torch.ones(calc.weights.shape[0]), atol=1e-6)
    assert float(calc.weights.triu(1).abs().sum()) == 0.0
    torch.testing.assert_close(calc.output, calc.weights @ calc.v)


def test_rotary_step_matters(real_lm, paris_run):
    """Skipping the rotation gives different weights: the comparison above would catch a wrong step."""
    calc = head_arithmetic(real_lm, paris_run, 3, 1)
    no_rope = torch.softmax((calc.q_raw @ calc.k_raw.T / 8.0).masked_fill(
        torch.triu(torch.ones(5, 5, dtype=torch.bool), 1), float("-inf")), -1)
    assert float((no_rope - calc.model_weights).abs().max()) > 1e-3
    assert not torch.allclose(calc.q, calc.q_raw)


def test_grouped_query_heads_share_keys_and_values(real_lm, paris_run):
    a, b, c = (head_arithmetic(real_lm, paris_run, 4, h) for h in (3, 4, 6))
    assert a.kv_head == b.kv_head == 1 and c.kv_head == 2
    assert a.group == [3, 4, 5]
    torch.testing.assert_close(a.k, b.k)
    torch.testing.assert_close(a.v, b.v)
    assert not torch.allclose(a.q, b.q)
    assert not torch.allclose(a.k, c.k)


def test_prefix_arithmetic_matches_a_run_on_the_prefix(real_lm, paris_run):
    """Causality: the first 3 positions of the long run equal a run on the 3-token prefix."""
    short = run_attention(real_lm, paris_run.ids[:3])
    from_long = head_arithmetic(real_lm, paris_run, 7, 2, n_tokens=3)
    from_short = head_arithmetic(real_lm, short, 7, 2)
    torch.testing.assert_close(from_long.weights, from_short.weights, atol=1e-5, rtol=0)
    assert from_long.max_weight_diff < 1e-5 and from_long.weights.shape == (3, 3)


def test_hand_arithmetic_on_tiny_model_every_head(tiny_lm):
    run = run_attention(tiny_lm, tiny_lm.encode("Attention is all you need, they said."))
    for layer in range(tiny_lm.info.layers):
        for head in range(tiny_lm.info.heads):
            calc = head_arithmetic(tiny_lm, run, layer, head)
            assert calc.max_weight_diff < 1e-5, (layer, head)
            assert calc.max_output_diff < 1e-5, (layer, head)
    with pytest.raises(ValueError):
        head_arithmetic(tiny_lm, run, tiny_lm.info.layers, 0)


# ------------------------------------------------------------------------------------------- summaries
def test_head_metrics_on_known_patterns():
    T = 4
    sink = torch.zeros(1, 1, T, T)
    sink[..., 0] = 1.0  # everything on token 0
    prev = torch.zeros(1, 1, T, T)
    prev[0, 0, 0, 0] = 1.0
    for i in range(1, T):
        prev[0, 0, i, i - 1] = 1.0
    uniform = torch.tril(torch.ones(T, T))
    uniform = (uniform / uniform.sum(-1, keepdim=True))[None, None]
    both = torch.cat([sink, prev, uniform], dim=1)  # [1, 3, T, T]
    assert head_metric(both, "first")[0].tolist() == pytest.approx([1.0, 1 / 3, (1 / 2 + 1 / 3 + 1 / 4) / 3])
    assert head_metric(both, "previous")[0].tolist() == pytest.approx([1 / 3, 1.0, (1 / 2 + 1 / 3 + 1 / 4) / 3])
    assert head_metric(both, "self")[0].tolist() == pytest.approx([1 / 4, 1 / 4, (1 + 1 / 2 + 1 / 3 + 1 / 4) / 4])
    expected_uniform = sum(math.log2(n) for n in range(1, T + 1)) / T
    assert head_metric(both, "entropy")[0].tolist() == pytest.approx([0.0, 0.0, expected_uniform], abs=1e-6)
    with pytest.raises(ValueError):
        head_metric(both, "nope")


def test_real_model_is_causal_with_an_attention_sink(paris_run):
    a = paris_run.attentions
    assert a.shape == (30, 9, 5, 5)
    assert masked_mass(a) == 0.0
    assert torch.allclose(a.sum(-1), torch.ones(30, 9, 5), atol=1e-5)
    assert 0.4 < sink_share(a) < 0.95  # most weight goes to the first token, as the page says
    bars = token_attention(a, 4, layer=None)
    assert bars.shape == (9, 5)
    torch.testing.assert_close(bars, a[:, :, 4, :5].mean(0))
    torch.testing.assert_close(token_attention(a, 2, layer=6), a[6, :, 2, :3])


def test_page_views_reshape_the_weights(paris_run):
    a = paris_run.attentions
    avg = token_view(a, 4)  # every layer and head
    torch.testing.assert_close(avg.weights, a[:, :, 4, :5].mean(dim=(0, 1)))
    assert avg.top == 0 and avg.sink_on_top and avg.top_weight == pytest.approx(float(avg.weights.max()))
    one = token_view(a, 3, layer=20, head=7)
    torch.testing.assert_close(one.weights, a[20, 7, 3, :4])
    assert one.top == int(a[20, 7, 3, :4].argmax())
    assert not token_view(a, 0).sink_on_top  # the first token sees only itself: no sink to speak of
    hv = head_view(a, 2, 0)
    torch.testing.assert_close(hv.weights, a[2, 0])
    assert hv.last_top == int(a[2, 0, -1].argmax()) and hv.last_top_weight == pytest.approx(float(a[2, 0, -1].max()))
    ov = head_overview(a, "previous")
    grid = head_metric(a, "previous")
    assert float(grid[ov.best_layer, ov.best_head]) == pytest.approx(float(grid.max())) == pytest.approx(ov.best_value)
    rows = ov.records()
    assert len(rows) == 30 * 9 and rows[9] == {"layer": 1, "head": 0, ov.label: round(float(grid[1, 0]), 5)}


def test_attention_facts_of_the_real_model(real_lm, paris_run):
    facts = attention_facts(paris_run.attentions, real_lm.info.kv_heads)
    assert facts.kv_groups == [[0, 1, 2], [3, 4, 5], [6, 7, 8]] and facts.kv_saving == 3
    assert facts.future == 0.0 and facts.sink == pytest.approx(sink_share(paris_run.attentions))
    assert facts.average.shape == (5, 5)
    assert torch.allclose(facts.average.sum(-1), torch.ones(5), atol=1e-5)
    # The groups agree with the hand computation's grouping.
    assert head_arithmetic(real_lm, paris_run, 0, 4).group == facts.kv_groups[1]


# ------------------------------------------------------------------------------------------- the block
def test_residual_stream_is_the_sum_of_attention_and_mlp_updates(real_lm, paris_run):
    """x_{l+1} = x_l + attention_l + MLP_l: the recorded updates add up to the model's own hidden states."""
    hs, run = paris_run.hidden_states, paris_run
    for layer in range(29):
        torch.testing.assert_close(hs[layer + 1, -1], hs[layer, -1] + run.last_attn[layer] + run.last_mlp[layer],
                                   atol=2e-3, rtol=1e-5)
    torch.testing.assert_close(run.final_residual[-1], hs[29, -1] + run.last_attn[29] + run.last_mlp[29],
                               atol=2e-3, rtol=1e-5)
    # The model's last hidden state is the final RMSNorm of the recorded residual stream.
    torch.testing.assert_close(real_lm.model.model.norm(run.final_residual), hs[-1], atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(run.attn_norms[:, -1], run.last_attn.norm(dim=-1))
    torch.testing.assert_close(run.mlp_norms[:, -1], run.last_mlp.norm(dim=-1))
    assert run.mlp_width == real_lm.model.config.intermediate_size == 1536


def test_block_flow_of_the_last_token(paris_run):
    flow = block_flow(paris_run)
    assert flow.position == 4 and flow.residual.shape == (31,) and flow.attn.shape == flow.mlp.shape == (30,)
    assert float(flow.residual[0]) == pytest.approx(float(paris_run.hidden_states[0, 4].norm()), rel=1e-5)
    assert float(flow.residual[-1]) == pytest.approx(float(paris_run.final_residual[4].norm()), rel=1e-5)
    torch.testing.assert_close(flow.rms, flow.residual / 24.0)  # √576 = 24
    assert float(flow.residual[-1]) > 50 * float(flow.residual[0])  # the stream grows: why every part normalises
    assert flow.mlp_larger == int((paris_run.mlp_norms[:, 4] > paris_run.attn_norms[:, 4]).sum())
    assert 0 < flow.mlp_larger < 30
    assert flow.biggest_mlp == int(paris_run.mlp_norms[:, 4].argmax())
    rows = flow.records()
    assert len(rows) == 30 and rows[3]["added by attention"] == round(float(flow.attn[3]), 4)
    fig = block_flow_figure(flow, " is")
    assert list(fig.data[0].y) == pytest.approx(flow.attn.tolist()) and fig.data[1].name == "added by the MLP"
    assert list(fig.data[2].y) == pytest.approx(flow.residual[:30].tolist()) and fig.layout.yaxis.type == "log"


def test_block_flow_on_the_tiny_model_any_position(tiny_lm):
    run = run_attention(tiny_lm, tiny_lm.encode("Attention is all you need, they said."))
    hs = run.hidden_states
    flow = block_flow(run, 2)
    assert flow.position == 2 and len(flow.attn) == tiny_lm.info.layers
    # Layer 0's two updates take the embedding to the next hidden state (their lengths bound the change).
    change = float((hs[1, 2] - hs[0, 2]).norm())
    assert change <= float(flow.attn[0] + flow.mlp[0]) + 1e-4
    assert float(flow.residual[1]) == pytest.approx(float(hs[1, 2].norm()), rel=1e-5)


# ------------------------------------------------------------------------------------------- logit lens
def test_logit_lens_last_row_is_the_model_and_paris_forms_late(real_lm, paris_run):
    lens = logit_lens(real_lm, paris_run.ids, hidden_states=paris_run.hidden_states, last_positions=3, k=3)
    assert lens.positions == [2, 3, 4]
    assert lens.tokens == [" of", " France", " is"]
    assert len(lens.layer_labels) == 31 and lens.layer_labels[-1] == "after layer 29"
    own = torch.softmax(paris_run.logits[-1].double(), -1)
    assert real_lm.token_text(int(lens.final_ids[-1])) == " Paris"
    assert float(lens.final_probs[-1, -1]) == pytest.approx(float(own.max()), abs=1e-5)
    assert 0.6 < float(lens.final_probs[-1, -1]) < 0.9
    assert int(lens.final_ranks[-1, -1]) == 1
    # " Paris" is invisible in early layers and only forms in the last few.
    assert float(lens.final_probs[:20, -1].max()) < 1e-3
    assert float(lens.final_probs[-2, -1]) < float(lens.final_probs[-1, -1])
    torch.testing.assert_close(lens.top_probs[-1, -1, 0], own.max().float(), atol=1e-5, rtol=0)


def test_logit_lens_first_top_row_and_records(real_lm, paris_run):
    lens = logit_lens(real_lm, paris_run.ids, hidden_states=paris_run.hidden_states, last_positions=2, k=3)
    row = lens.first_top_row()
    assert (lens.final_ranks[row:, -1] == 1).all() and (row == 0 or int(lens.final_ranks[row - 1, -1]) > 1)
    rows = lens.records(real_lm.token_text)
    assert len(rows) == 31 * 2
    last = rows[-1]
    assert last["layer"] == "after layer 29" and last["position"] == 4 and last["top guess"] == " Paris"
    assert last["rank of final answer"] == 1 and last["p(final answer)"] == pytest.approx(float(lens.final_probs[-1, -1]))
    # A synthetic lens: the answer is on top at rows 1, 3 and 4; it stays on top from row 3.
    ranks = torch.tensor([[5], [1], [3], [1], [1]])
    fake = LensResult([0], ["x"], [str(i) for i in range(5)], torch.zeros(5, 1, 1, dtype=torch.long),
                      torch.zeros(5, 1, 1), torch.zeros(1, dtype=torch.long), torch.zeros(5, 1, dtype=torch.float64),
                      ranks)
    assert fake.first_top_row() == 3


def test_logit_lens_runs_its_own_forward_when_needed(tiny_lm):
    ids = tiny_lm.encode("one two three")
    a = logit_lens(tiny_lm, ids, last_positions=2, k=2)
    assert a.top_ids.shape == (tiny_lm.info.layers + 1, 2, 2)
    assert torch.all(a.top_probs[..., 0] >= a.top_probs[..., 1])
    with pytest.raises(ValueError):
        logit_lens(tiny_lm, [])


@pytest.mark.parametrize("view", ["logit_lens", "head_arithmetic"])
def test_direct_module_calls_wait_while_another_session_holds_the_model(tiny_lm, view):
    """The soak's bug: session A's run_attention had hooks on the shared final norm while session B's logit lens
    called that norm directly; A's hook kept B's 2-D input as its residual stream and the page raised. Every direct
    call into the shared modules must wait for whoever holds the model."""
    import threading

    from engine.attention import head_arithmetic, run_attention

    ids = tiny_lm.encode("one two three four")
    run = run_attention(tiny_lm, ids)
    calls_while_held: list[tuple] = []
    held, release, done = threading.Event(), threading.Event(), threading.Event()
    layer = tiny_lm.model.model.layers[0]

    def holder():
        with tiny_lm.exclusive():
            handles = [m.register_forward_pre_hook(lambda _m, args: calls_while_held.append(tuple(args[0].shape)))
                       for m in (tiny_lm.model.model.norm, layer.input_layernorm, layer.self_attn.q_proj)]
            held.set()
            release.wait(5)
            for h in handles:
                h.remove()

    def visitor():
        if view == "logit_lens":
            logit_lens(tiny_lm, ids, hidden_states=run.hidden_states, last_positions=2, k=2)
        else:
            head_arithmetic(tiny_lm, run, 0, 0)
        done.set()

    a = threading.Thread(target=holder)
    a.start()
    assert held.wait(5)
    b = threading.Thread(target=visitor)
    b.start()
    assert not done.wait(0.5), "the direct call ran while another session held the model"
    release.set()
    a.join(5)
    b.join(10)
    assert done.is_set() and calls_while_held == []


# ------------------------------------------------------------------------------------------- generated tokens
def test_generated_attention_rows_match_the_forward(real_lm):
    from engine.attention import generated_attention

    ids = real_lm.encode(PARIS)
    gen = generated_attention(real_lm, ids, 3)
    assert gen.generated[0] == " Paris"
    assert 0.6 < gen.probs[0] < 0.9  # the real probability, not greedy's one-hot 1.0
    assert gen.attentions.shape == (30, 9, 3, len(ids) + 2)
    # The row that chose " Paris" is the last prompt token's row: it reads only the prompt.
    run = run_attention(real_lm, ids)
    torch.testing.assert_close(gen.attentions[:, :, 0, : len(ids)], run.attentions[:, :, -1, :], atol=1e-5, rtol=0)
    assert float(gen.prompt_share()[0]) == pytest.approx(1.0, abs=1e-5)
    assert torch.all(gen.prompt_share() <= 1.0 + 1e-5)
    assert gen.over_prompt(5).shape == (3, len(ids))
    steps = gen.steps(5)
    share = gen.prompt_share(5)
    assert [r["step"] for r in steps] == [1, 2, 3] and steps[0]["generated token"] == "' Paris'"
    assert steps[1]["weight on the prompt"] == round(float(share[1]), 3)
    assert steps[1]["weight on its own earlier output"] == round(1 - float(share[1]), 3)


# ------------------------------------------------------------------------------------------- offline bertviz
def _params(html: str) -> dict:
    m = re.search(r"const params = (\{.*?\});", html)
    assert m, "params not found"
    return json.loads(m.group(1))


def test_bertviz_html_is_offline_compact_and_exact(real_lm, paris_run):
    html = head_view_html(paris_run.tokens, paris_run.attentions, [0, 5, 29], layer=5)
    assert "cdnjs" not in html and "require.config" not in html
    assert "d3js.org v5.7.0" in html and "jQuery v3.7.1" in html and "RequireJS 2.3.8" in html
    assert html.count("const params") == 1  # bertviz ships its params twice; we keep one copy
    params = _params(html)
    assert params["include_layers"] == [0, 5, 29] and params["layer"] == 5
    entry = params["attention"][0]
    assert entry["left_text"] == ["The", " capital", " of", " France", " is"]
    got = torch.tensor(entry["attn"])
    want = paris_run.attentions[[0, 5, 29]]
    assert float((got - want).abs().max()) <= 5e-4 + 1e-9  # rounded to 3 decimals, nothing else lost
    assert ", " not in re.search(r"const params = (\{.*?\});", html).group(1)[:2000]


def test_bertviz_escapes_tokens_and_model_view(real_lm):
    run = run_attention(real_lm, real_lm.encode("a</script><img src=x onerror=alert(1)>\nb"))
    html = model_view_html(run.tokens, run.attentions, [1, 2])
    body = html.split("/* static/vendor/require.min.js */")[1]
    assert "</script><img" not in body and "<img" not in body
    tokens = _params(html)["attention"][0]["left_text"]
    assert "↵" in tokens and any("</" in t for t in tokens)  # readable, and safe only because it is escaped
    assert _params(html)["display_mode"] == "light"


def test_bertviz_payload_is_bounded(real_lm):
    text = " ".join(["attention"] * 60)
    run = run_attention(real_lm, real_lm.encode(text)[:48])
    layers = layers_within_budget(range(30), 9, 48)
    assert 1 <= len(layers) < 30 and len(layers) * 9 * 48 * 48 <= MAX_CELLS
    assert layers == list(range(len(layers)))
    html = head_view_html(run.tokens, run.attentions, layers)
    assert len(html) < 2_000_000
    assert layers_within_budget([7], 9, 500) == [7]  # always at least one layer
    assert default_layers(30) == [0, 6, 12, 18, 24, 29] and default_layers(2) == [0, 1]
