"""AppTest: the generative-AI map page (hierarchy, modality table, live vs described, quiz)."""

from __future__ import annotations

import json

import pytest

from components.figures.maps import DESCRIBED, LIVE, SELECTED
from engine.landscape import HIERARCHY, MODALITIES, QUIZ, ancestors
from tests.conftest import app_page, assert_no_exception

STEM = "genai_landscape"


def charts(at) -> dict[str, dict]:
    """Plotly specs by widget key (the key ends the element id)."""
    return {c.proto.id.split("-", 2)[-1]: json.loads(c.proto.spec) for c in at.get("plotly_chart")}


def table(at):
    """The modality table as a DataFrame (Domain back as a column)."""
    return at.table[0].value.reset_index()


@pytest.fixture()
def page():
    at = app_page(STEM)
    assert_no_exception(at)
    return at


def test_map_data_is_consistent():
    keys = {lv.key for lv in HIERARCHY}
    assert all(lv.parent in keys or lv.parent == "" for lv in HIERARCHY)
    assert [lv.key for lv in ancestors("llm")] == ["llm", "genai", "dl", "ml", "ai"]
    def is_inside(inner, outer):
        return outer in [lv.key for lv in ancestors(inner)]

    assert is_inside("llm", "genai") and not is_inside("genai", "llm") and not is_inside("image", "llm")
    assert {m.domain for m in MODALITIES if m.live_here} == {"Text", "Code", "Images"}
    families = {f.name for m in MODALITIES for f in m.families}
    assert {"Transformer LLM", "Diffusion model", "GAN", "WaveNet-style audio", "NeRF"} <= families
    assert all(0 <= q.answer < len(q.options) for q in QUIZ)


def test_default_page_map_table_and_live_checks(page):
    at = page
    specs = charts(at)
    icicle = specs["land_map"]["data"][0]
    assert icicle["type"] == "icicle"
    ids = icicle["ids"]
    colours = dict(zip(ids, icicle["marker"]["colors"]))
    assert colours["llm"] == LIVE and colours["image"] == LIVE and colours["ai"] == DESCRIBED
    outline = dict(zip(ids, icicle["marker"]["line"]["color"]))
    assert outline["llm"] == SELECTED and outline["genai"] != SELECTED  # the chosen level is outlined
    values = dict(zip(ids, icicle["values"]))
    assert values["genai"] == values["llm"] + values["image"] + values["audio"] + values["video"] + values["3d"]
    # The explorer panel explains the chosen level and its chain of supersets.
    md = " ".join(m.value for m in at.markdown)
    assert "Large language models ⊂ Generative AI ⊂ Deep learning ⊂ Machine learning ⊂ Artificial intelligence" in md
    # Modalities: the table has one row per model family and says plainly what runs here.
    df = table(at)
    assert len(df) == sum(len(m.families) for m in MODALITIES)
    assert set(df.loc[df["In this app"] == "Live", "Domain"]) == {"Text", "Code", "Images"}
    gan = df[df["Model family"] == "GAN"].iloc[0]
    assert gan["Domain"] == "Images" and "Stable Diffusion" not in gan["Examples"]  # examples per family
    # The diffusion model runs here; a GAN does not, although both make images.
    assert gan["In this app"] == "Described only"
    assert df.loc[df["Model family"] == "Diffusion model", "In this app"].tolist() == ["Live"]
    assert "Audio, Video, 3D / Design" in md and "no audio, video or 3D model runs here" in md
    assert "**Images** run live too" in md
    assert specs["land_modalities"]["data"][0]["type"] == "sunburst"
    # Live checks from the real model: prose and code through the same next-token head.
    assert specs["land_live_text"]["data"][0]["y"][0] == "' Paris'"
    assert specs["land_live_code"]["data"][0]["y"][0] == "' a'"
    # Links to the pages that demonstrate the LLM branch (only pages that exist).
    links = {p.value for p in at.main.get("page_link")}
    assert "Next-token prediction" in links and "From ML to LLMs" in links


def test_views_level_choice_and_table_filter(page):
    at = page
    at.radio(key="land_view").set_value("Sunburst").run()
    assert charts(at)["land_map"]["data"][0]["type"] == "sunburst"
    at.radio(key="land_view").set_value("Nested boxes").run()
    assert charts(at)["land_map"]["data"][0]["type"] == "treemap"
    at.selectbox(key="land_level").set_value("image").run()
    assert_no_exception(at)
    assert any("Live here: Diffusion models" in s.value for s in at.success)  # the live diffusion page
    spec = charts(at)["land_map"]["data"][0]
    assert dict(zip(spec["ids"], spec["marker"]["line"]["color"]))["image"] == SELECTED
    at.selectbox(key="land_level").set_value("audio").run()
    assert any("Described only" in i.value for i in at.info)
    at.segmented_control(key="land_show").set_value("Live here").run()
    assert set(table(at)["Domain"]) == {"Text", "Code", "Images"}
    at.segmented_control(key="land_show").set_value("Described only").run()
    assert "Text" not in set(table(at)["Domain"])


def test_quiz_gives_immediate_feedback_and_score(page):
    at = page
    assert not at.main.error and not any("Right." in s.value for s in at.success)
    first, second = QUIZ[0], QUIZ[1]
    at.radio(key="land_q_" + first.key).set_value(first.options[0]).run()  # wrong: "yes, the same thing"
    errors = [e.value for e in at.main.error]
    assert len(errors) == 1 and "Not quite" in errors[0] and first.options[first.answer] in errors[0]
    at.radio(key="land_q_" + second.key).set_value(second.options[second.answer]).run()
    assert any("Right." in s.value for s in at.success)
    assert next(m.value for m in at.metric if m.label == "Score") == "1 / 2"
    # Answer everything correctly: full marks; the vocabulary question uses the live model's size.
    for q in QUIZ:
        options = at.radio(key="land_q_" + q.key).options
        at.radio(key="land_q_" + q.key).set_value(options[q.answer])
    at.run()
    assert next(m.value for m in at.metric if m.label == "Score") == f"{len(QUIZ)} / {len(QUIZ)}"
    assert any("All correct" in m.value for m in at.markdown)
    assert any("49,152" in r.label for r in at.radio)
    at.button(key="land_quiz_reset").click().run()
    assert all(at.radio(key="land_q_" + q.key).value is None for q in QUIZ)
    assert not any(m.label == "Score" for m in at.metric)


def test_url_state_and_invalid_values():
    at = app_page(STEM, query={"land_view": "Sunburst", "land_level": "Code models", "land_show": "Live here"})
    assert_no_exception(at)
    assert charts(at)["land_map"]["data"][0]["type"] == "sunburst"
    assert at.selectbox(key="land_level").value == "code"
    assert set(table(at)["Domain"]) == {"Text", "Code", "Images"}
    bad = app_page(STEM, query={"land_view": "<script>", "land_level": "../../etc", "land_show": "nope"})
    assert_no_exception(bad)
    assert bad.radio(key="land_view").value == "Icicle" and bad.selectbox(key="land_level").value == "llm"
    assert len(table(bad)) == sum(len(m.families) for m in MODALITIES)


def test_analogy_table_is_the_posts_tied_to_the_map(page, real_lm):
    from components.frame import page_titles
    from engine.landscape import analogy_rows

    df = next(d.value for d in page.dataframe if "The post's analogy" in d.value.columns)
    assert df.to_dict("records") == analogy_rows(page_titles())
    assert list(df["Term"]) == ["ML", "Deep Learning", "Generative AI", "LLM"]
    assert list(df["On the map"])[-1] == " ⊂ ".join(lv.name for lv in ancestors("llm"))
    assert any("predate deep learning" in i.value for i in page.info)
    families = next(d.value for d in page.dataframe if "family" in d.value.columns)
    assert families.set_index("family").loc["Decoder-only", "live here"] == real_lm.info.name
