"""Diffusion: generative AI beyond text, live. A small DDPM draws 8×8 digits and 2-D points on this CPU."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from components import caches
from components.display import folded, show_chart, watch_job
from components.figures.images import (
    digit_grid,
    loss_curve,
    reverse_animation,
    schedule_figure,
    toy_field_figure,
    toy_flow_animation,
)
from components.frame import end_page, ensure_frame
from engine import diffusion as dm

T = dm.STEPS
SOURCE_LABELS = {"shipped": "Checkpoint shipped with the app", "trained here": "Trained on this server"}

ensure_frame()  # a deep link on a fresh server runs this file alone: rerun it inside the frame
st.title("Diffusion models")
st.markdown(
    "The post says **generative AI is bigger than LLMs**: images come from **diffusion models** (DALL·E, Midjourney, "
    "Stable Diffusion), and every generative model learns **p(x)**, the probability of the data itself. This page "
    "runs a real diffusion model on this computer. It learned to draw handwritten digits from the 1,797 small "
    "8×8 images that ship with scikit-learn, and every image below was just computed."
)

# ------------------------------------------------------------------------------------------------ the data
st.header("1. The data: handwritten digits")
st.markdown(
    "Each digit is 8 × 8 = **64 grey levels**. For the model, an image is just a list of 64 numbers between −1 "
    "(white paper) and 1 (black ink). A generative model must learn which lists of 64 numbers look like a digit."
)
data, labels = caches.diffusion_digits_data()
first = [next(i for i, y in enumerate(labels) if y == d) for d in range(10)]
show_chart(digit_grid(data[first].numpy(), [f"a real {d}" for d in range(10)], cols=10, height=160),
           key="diff_real")
st.caption(f"The first example of each digit among the {len(labels):,} training images.")

# ------------------------------------------------------------------------------------------------ forward process
st.header("2. The forward process: a digit turning into noise")
st.markdown(
    f"Training starts by **destroying** images. Over {T} small steps, Gaussian noise is mixed in until nothing of the "
    "digit is left. The mix has a closed form, so any step can be reached in one jump:"
)
st.latex(r"x_t = \sqrt{\bar\alpha_t}\,x_0 + \sqrt{1-\bar\alpha_t}\;\varepsilon, \qquad \varepsilon \sim \mathcal{N}(0, I)")
c1, c2 = st.columns(2)
index = c1.number_input("Training image number", 0, len(labels) - 1, 0, step=1, key="diff_img", bind="query-params")
t_fwd = c2.slider("Step t", 0, T, 30, key="diff_t", bind="query-params",
                  help="0 is the clean image; each step adds a little more noise.")
shown_steps = sorted({0, 10, 25, 50, 75, T, int(t_fwd)})
frames, digit_label, check = caches.diffusion_forward(int(index), tuple(shown_steps), 0)
show_chart(digit_grid(frames.numpy(), [f"t = {s}" + (" ◀" if s == t_fwd else "") for s in shown_steps]),
           key="diff_forward")
schedule = dm.linear_schedule()
m1, m2, m3 = st.columns(3)
m1.metric(f"Image left in x_{T}", f"{check.signal_kept:.4f}", help="√ᾱ_T: the weight of the clean digit.")
m2.metric(f"Mean of x_{T} (all digits)", f"{check.mean:+.3f}", help="Pure noise has mean 0.")
m3.metric(f"Spread of x_{T} (all digits)", f"{check.std:.3f}", help="Pure noise N(0, 1) has standard deviation 1.")
st.caption(
    f"Training image {int(index)} is a {digit_label}. At the last step, over all {len(labels):,} digits × 64 pixels, "
    f"x_{T} has mean {check.mean:+.3f}, standard deviation {check.std:.3f} and correlation {check.corr_with_x0:+.3f} "
    "with the clean digits: it is plain unit-variance noise, the same for every digit."
)
with folded("How fast is the image replaced by noise?", "diff_schedule_open", ":material/show_chart:") as is_open:
    if is_open:
        show_chart(schedule_figure(*dm.mixing_weights(schedule), int(t_fwd)), key="diff_schedule")
        st.caption(f"The DDPM linear schedule with {T} steps: β grows from {float(schedule.betas[0]):.4f} to "
                   f"{float(schedule.betas[-1]):.2f}. The dotted line is the slider's step.")

# ------------------------------------------------------------------------------------------------ training
st.header("3. Training: learn to predict the noise")
st.markdown(
    "The network sees a noisy digit x_t, the step t and the digit's label, and must **guess the noise ε that was "
    "added**. Its loss is the squared error between the real and the guessed noise, averaged over random images, "
    "steps and noises. A tenth of the time the label is hidden, so the same network also learns to denoise without "
    "knowing the digit (that is what makes guidance possible below)."
)
shipped = caches.diffusion_checkpoint("digits")
job = caches.diffusion_started("digits")  # a run someone on this server already started, or None
if shipped is None and job is None:
    job = caches.diffusion_training("digits")  # no checkpoint in this build: train now
if (job is None or job.error) and st.button(
    "Train it yourself, on this server", icon=":material/model_training:", key="diff_train",
    help="The same training code and seed that made the shipped checkpoint. About a minute on 2 free cores; "
    "everyone on this server shares the run.",
):
    job = caches.diffusion_training("digits")
if job is not None and not job.done:  # the run is shared by every session; each session only draws its progress
    watch_job(job, lambda j: f"Training: step {j.step:,} of {j.total:,}, {j.elapsed:.0f} s",
              lambda values: loss_curve({"this run (live)": values}, 50), key="diff_train")
if job is not None and job.error:
    st.error(f"Training failed: {job.error}. Press the button to try again.", icon=":material/error:")
trained = job.result if job is not None and job.done else None
curves = {}
if shipped is not None:
    curves[SOURCE_LABELS["shipped"]] = shipped.losses
if trained is not None:
    curves[SOURCE_LABELS["trained here"]] = dm.smooth(trained.losses)
show_chart(loss_curve(curves, 50), key="diff_loss")
parts = []
if shipped is not None:
    parts.append(f"the shipped checkpoint's loss fell from {shipped.losses[0]:.3f} to {shipped.losses[-1]:.3f} over "
                 f"{len(shipped.losses) * 50:,} steps (training took {shipped.seconds:.0f} s when "
                 "`scripts/train_diffusion.py` made it)")
if trained is not None:
    mine = curves[SOURCE_LABELS["trained here"]]
    parts.append(f"the run on this server fell from {mine[0]:.3f} to {mine[-1]:.3f} in {trained.seconds:.0f} s")
if not parts:
    end_page()  # no model at all: the failure is shown above
st.caption("Mean loss per 50 steps: " + "; ".join(parts) + f". The network has "
           f"{(shipped or trained).parameter_count:,} weights.")
choices = caches.diffusion_ready_sources("digits")
source = st.segmented_control("Model used below", choices, default=choices[0], format_func=SOURCE_LABELS.get,
                              key="diff_model", bind="query-params") or choices[0]

# ------------------------------------------------------------------------------------------------ reverse process
st.header("4. The reverse process: noise turning into a new digit")
st.markdown(
    "To **generate**, start from pure noise and run the network backwards: at each step it guesses the noise, "
    f"removes a little of it and adds back a smaller fresh dose. After {T} steps a digit appears that is in no "
    "training set. Like a prompt for an image model, you choose **which digit** to draw; **guidance** says how hard "
    "to push towards it (0 ignores the label, 1 follows it, more exaggerates it)."
)
c1, c2, c3, c4 = st.columns(4)
digit = c1.selectbox("Digit to draw", list(range(10)), index=3, key="diff_digit", bind="query-params")
guidance = c2.slider("Guidance strength w", 0.0, 5.0, 2.0, step=0.5, key="diff_w", bind="query-params")
seed = c3.number_input("Seed", 0, 2**31 - 1, 0, step=1, key="diff_seed", bind="query-params",
                       help="The seed fixes the starting noise: the same seed always draws the same digit.")
k = c4.slider("Denoising steps done", 0, T, T, key="diff_step", bind="query-params")
run = caches.diffusion_samples("digits", source, tuple(int(seed) + i for i in range(8)), int(digit), float(guidance))
st.latex(r"\hat\varepsilon = \hat\varepsilon(x_t, t, \varnothing) + w\,\big(\hat\varepsilon(x_t, t, \text{digit}) - "
         r"\hat\varepsilon(x_t, t, \varnothing)\big)")
moments = sorted({0, 25, 50, 75, 90, T, int(k)})
show_chart(
    digit_grid(
        [run.path[m][0].numpy() for m in moments] + [run.x0_pred[min(m, T - 1)][0].numpy() for m in moments],
        [f"after {m}" + (" ◀" if m == k else "") for m in moments] + ["its guess" for _ in moments],
        cols=len(moments), height=330,
    ),
    key="diff_reverse",
)
st.caption(
    f"Seed {int(seed)}, digit {int(digit)}, w = {float(guidance):g}. Top row: the image after that many of the {T} "
    "denoising steps. Bottom row: the network's guess of the finished image at that moment: the digit's shape is "
    "decided early, the details late."
)
with folded("Eight seeds forming at once (animation)", "diff_seeds_open", ":material/animation:") as is_open:
    if is_open:
        frames_at = list(range(0, T + 1, 5))
        show_chart(reverse_animation(run.path[frames_at].numpy(), [f"step {m} of {T}" for m in frames_at], cols=8),
                   key="diff_seeds")
        st.caption(f"Seeds {int(seed)} to {int(seed) + 7}: eight different starting noises, eight different "
                   f"{int(digit)}s. Press ▶ Play to watch all of them form at once, or drag the slider.")

# ------------------------------------------------------------------------------------------------ p(x) made concrete
st.header("5. Is it copying? p(x) made concrete")
st.markdown(
    "A generative model should produce **new** samples from the distribution of the data, not recall training "
    "images. Two checks, computed now: a classifier trained **only on real digits** reads each generated digit, and "
    "each generated digit is shown next to the **closest training image** of all 1,797."
)
images, reading, nearest = caches.diffusion_quality(source, float(guidance), 10, int(seed))
_, held_out = caches.diffusion_classifier()
m1, m2, m3 = st.columns(3)
m1.metric("Recognised as the digit asked for", f"{reading.rate:.0%}", f"chance: {reading.chance:.0%}",
          delta_color="off", delta_arrow="off", help=f"{len(reading.wanted)} generated digits, 10 of each.")
m2.metric("Classifier on real held-out digits", f"{held_out:.0%}", help="The same kind of classifier on real "
          "digits it never saw: the best a generated digit can hope for.")
m3.metric("Closest training image (median)", f"{nearest.median_distance:.3f}",
          f"real digits: {nearest.real_to_real:.3f}", delta_color="off", delta_arrow="off",
          help="Root-mean-square pixel difference to the nearest of the 1,797 training images. A copy would be 0. "
               "The second number is the same distance from a real digit to its nearest other training digit.")
pick = [d * 10 for d in range(10)]
show_chart(
    digit_grid(
        [images[i].numpy() for i in pick] + [data[nearest.index[i]].numpy() for i in pick],
        [f"asked {reading.wanted[i]}, read {reading.predicted[i]}" for i in pick]
        + [f"{nearest.distance[i]:.2f} away" for i in pick],
        cols=10, height=280,
    ),
    key="diff_nearest",
)
st.caption(
    f"Top: one generated digit per class (w = {float(guidance):g}, seeds from {int(seed)}) and how the classifier "
    "read it. Bottom: the closest training image and its distance. "
    + ("No generated digit is a copy" if min(nearest.distance) > 0 else "At least one is an exact copy")
    + f": the smallest distance is {min(nearest.distance):.3f} (0 would be a copy)."
)
per_digit = pd.DataFrame({f"{d}": [f"{hit} of {n}"] for d, (hit, n) in reading.per_class().items()},
                         index=["recognised"])
st.dataframe(per_digit, key="diff_per_digit")
st.caption("How many of the 10 generated digits of each class the classifier read as that class.")

# ------------------------------------------------------------------------------------------------ 2-D toy
st.header("6. In two dimensions: watch the points flow onto the data")
st.markdown(
    "Images have 64 dimensions; points on a plane have 2, so the whole model can be drawn. The same kind of network "
    "learned where the points of a shape lie. The arrows are its **denoising direction**: at each place and noise "
    "level, which way a point should move to look more like the data (the learned *score*). Sampling follows the "
    "arrows from noise onto the shape."
)
c1, c2 = st.columns(2)
shape = c1.selectbox("Shape", [*dm.TOY_SHAPES, "my own points"], key="diff_shape", bind="query-params")
t_field = c2.slider("Noise level of the arrows (step t)", 1, T, 10, key="diff_field_t", bind="query-params")
name, points, toy_data = shape, (), None
if shape == "my own points":
    st.markdown(f"Type or paste between {dm.MIN_POINTS} and {dm.MAX_POINTS:,} points, one `x, y` pair per line.")
    example = "\n".join(f"{float(x):.2f}, {float(y):.2f}" for x, y in dm.toy_data("rings", 60, seed=1))
    parsed, message = dm.parse_points(st.text_area("Points", example, height=150, key="diff_points", bind="query-params"))
    if parsed is None:
        st.warning(message, icon=":material/warning:")
    else:
        if message:
            st.caption(f":material/info: {message}")
        name, points, toy_data = "custom", tuple((float(x), float(y)) for x, y in parsed), parsed
if toy_data is None and name != "my own points":
    toy_data = dm.toy_data(name)
toy_source = "shipped" if name != "custom" and caches.diffusion_checkpoint(name) is not None else "trained here"
if toy_data is not None:
    toy_job = caches.diffusion_training(name, points) if toy_source == "trained here" else None
    if toy_job is not None and not toy_job.done:
        watch_job(toy_job, lambda j: f"Training the 2-D model: step {j.step:,} of {j.total:,}", poll_s=0.3)
    if toy_job is not None and toy_job.error:
        st.error(f"Training failed: {toy_job.error}", icon=":material/error:")
    else:
        toy_run = caches.diffusion_samples(name, toy_source, tuple(range(int(seed), int(seed) + 300)), None, 0.0,
                                           points)
        grid, arrows = caches.diffusion_field(name, toy_source, int(t_field) - 1, points)
        at_t = toy_run.path[T - int(t_field) + 1].numpy()  # where the samples are when the noise level is t
        show_chart(toy_field_figure(toy_data.numpy(), grid, arrows, at_t), key="diff_field")
        st.caption(f"Arrows at step t = {int(t_field)} of {T}; orange: 300 generated points at that moment of "
                   "sampling. At large t the arrows all point to the middle of the data; at small t they point "
                   "to the nearest part of the shape.")
        with folded("300 points flowing onto the shape (animation)", "diff_flow_open", ":material/animation:") as is_open:
            if is_open:
                moments = list(range(0, T + 1, 4))
                show_chart(toy_flow_animation(toy_data.numpy(), toy_run.path[moments].numpy(),
                                              [f"step {m} of {T}" for m in moments]), key="diff_flow")
                st.caption("Press ▶ Play: 300 points start as Gaussian noise and flow onto the shape.")

# ------------------------------------------------------------------------------------------------ LLM vs diffusion
st.header("7. Two ways to generate")
left, right = st.columns(2, gap="large")
with left:
    st.subheader("An LLM: one token at a time")
    st.markdown(
        "It models **p(next token | previous tokens)**. Each step adds one token at the end and never changes the "
        "ones before. A 20-token answer takes 20 steps, and the text grows from left to right."
    )
    st.page_link("pages/next_token.py", label="See it on the Next-token page", icon=":material/arrow_forward:")
with right:
    st.subheader("Diffusion: the whole image at once")
    st.markdown(
        f"It starts with every pixel as noise and **refines all 64 pixels together** at each of {T} steps. Nothing "
        "is final until the end, and the number of steps does not depend on the image."
    )
    quarter = [0, T // 4, T // 2, 3 * T // 4, T]
    show_chart(digit_grid([run.path[m][0].numpy() for m in quarter], [f"step {m}" for m in quarter], height=170),
               key="diff_vs_llm")
st.caption("Both are generative models of p(x): the LLM writes p(text) as a product of next-token probabilities; "
           "diffusion learns to undo noise, which amounts to learning p(image).")
