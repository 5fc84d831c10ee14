"""Lessons: every lesson renders in both languages, the API serves the same, unknown slugs are
404s, and every check-yourself answer equals an independent torch computation."""

import json
import math
import re
from html import unescape

import pytest
import torch
import torch.nn.functional as F
from fastapi.testclient import TestClient
from torch import nn

from app.i18n import LANGUAGES, catalogue
from app.lesson_answers import num
from app.lessons import LESSONS, fill, lesson_by_slug
from app.main import app
from app.routes.pages import PAGES
from cnncore.model_options import build_classifier
from cnncore.models import build_model
from cnncore.vanishing import vanishing_gradients

client = TestClient(app)
SLUGS = [lesson.slug for lesson in LESSONS]
QUESTIONS = {(lesson.slug, q.id): q for lesson in LESSONS for q in lesson.questions}


def answers(slug: str, question: str) -> dict:
    """label → Answer of one question, as the lesson computes it."""
    return {a.label: a for a in QUESTIONS[(slug, question)].answers()}


def messages(lang: str) -> dict[str, str]:
    return {**catalogue(lang, "common"), **catalogue(lang, "lessons")}


# --- the path, its texts and its pages ---------------------------------------------------------


def test_the_path_covers_the_curriculum_in_order():
    assert SLUGS == [
        "convolution",
        "edge-filters",
        "padding-stride",
        "dilation",
        "channels-params",
        "transposed",
        "pooling",
        "activations",
        "softmax-loss",
        "classic-cnns",
        "modern-cnns",
        "receptive-field",
        "training",
        "transfer-learning",
    ]
    assert all(1 <= len(lesson.questions) <= 3 for lesson in LESSONS)


@pytest.mark.parametrize("lang", LANGUAGES)
def test_every_text_a_lesson_needs_exists_and_fills(lang):
    msgs = messages(lang)
    for lesson in LESSONS:
        prefix = f"lesson.{lesson.key}"
        assert msgs[prefix] and msgs[f"{prefix}.summary"] and msgs[f"{prefix}.p1"]
        assert f"home.lesson.{lesson.key}" in catalogue(lang, "home")
        for number in range(1, len(lesson.more) + 1):
            assert msgs[f"{prefix}.more{number}"]
        for question in lesson.questions:
            for key in (f"{prefix}.q.{question.id}", f"{prefix}.q.{question.id}.why"):
                text = fill(msgs[key], question.params)
                assert not re.search(r"\{\w+\}", text), f"{key} ({lang}) leaves {text!r}"
            for answer in question.answers():
                assert f"lessons.answer.{answer.label}" in msgs, answer.label
                assert answer.work, f"{lesson.slug}/{question.id}: no worked answer"


def test_both_languages_state_the_same_numbers():
    """Numbers and formulas are identical in Korean and English: the same digits in each text."""
    ko, en = catalogue("ko", "lessons"), catalogue("en", "lessons")
    assert set(ko) == set(en)
    for key in en:
        if key.startswith("lesson."):
            assert sorted(re.findall(r"\d+", ko[key])) == sorted(re.findall(r"\d+", en[key])), key
            assert sorted(re.findall(r"\{\w+\}", ko[key])) == sorted(
                re.findall(r"\{\w+\}", en[key])
            ), key


@pytest.mark.parametrize("lang", LANGUAGES)
@pytest.mark.parametrize("slug", SLUGS)
def test_every_lesson_renders_in_each_language(slug, lang):
    response = client.get(f"/lessons/{slug}", params={"lang": lang})
    assert response.status_code == 200
    html = response.text
    assert f'<html lang="{lang}">' in html
    msgs = messages(lang)
    lesson = lesson_by_slug(slug)
    assert f"<h1>{msgs[f'lesson.{lesson.key}']}</h1>" in html
    for question in lesson.questions:
        text = fill(msgs[f"lesson.{lesson.key}.q.{question.id}"], question.params)
        assert text.replace("'", "&#39;") in html
        for answer in question.answers():
            assert f'<strong class="answer-value">{answer.value}</strong>' in html
    assert "lesson." + lesson.key + "." not in html  # no catalogue key shown as text
    # the explorer: framed in embed mode where its page exists, announced otherwise
    if lesson.explorer.path in PAGES:
        assert f'src="{lesson.explorer.path}?' in html and "embed=1" in html
    else:
        assert 'class="explorer-coming"' in html and "<iframe" not in html


def test_a_lesson_page_embeds_only_its_own_texts():
    html = client.get("/lessons/pooling", params={"lang": "en"}).text
    embedded = json.loads(re.search(r'id="messages">(.*?)</script>', html, re.S)[1])
    assert "lessons.show_answer" in embedded and "lesson.pooling" in embedded
    # other lessons: their titles (the path's links) and nothing of their texts, embedded or drawn
    others = [lesson.key for lesson in LESSONS if lesson.key != "pooling"]
    assert not any(key.startswith(f"lesson.{other}.") for key in embedded for other in others)
    texts, shown = catalogue("en", "lessons"), unescape(html)
    assert texts["lesson.pooling.p1"].split(".")[0] in shown
    for other in others:
        assert texts[f"lesson.{other}.p1"].split(".")[0] not in shown, other


def test_index_lists_every_lesson_in_order_with_links():
    html = client.get("/lessons", params={"lang": "ko"}).text
    found = re.findall(r'href="/lessons/([a-z-]+)\?lang=ko"', html)
    assert found[: len(SLUGS)] == SLUGS or [s for s in found if s in SLUGS] == SLUGS


def test_home_shows_the_lesson_path():
    html = client.get("/", params={"lang": "en"}).text
    for lesson in LESSONS:
        assert f'href="/lessons/{lesson.slug}?lang=en"' in html
        assert catalogue("en", "home")[f"home.lesson.{lesson.key}"].replace("'", "&#39;") in html


def test_prev_and_next_follow_the_path():
    first = client.get("/api/lessons/convolution").json()
    last = client.get("/api/lessons/transfer-learning").json()
    assert first["previous"] is None and first["next"]["slug"] == "edge-filters"
    assert last["next"] is None and last["previous"]["slug"] == "training"
    html = client.get("/lessons/dilation", params={"lang": "en"}).text
    assert 'data-previous="/lessons/padding-stride?lang=en"' in html
    assert 'data-next="/lessons/channels-params?lang=en"' in html


@pytest.mark.parametrize(
    "slug", ["nope", "convolution.html", "CONVOLUTION", "a" * 300, "con%20volution", "..."]
)
def test_unknown_slug_is_a_404_page_and_a_404_json(slug):
    page = client.get(f"/lessons/{slug}", params={"lang": "en"})
    assert page.status_code == 404
    assert "No such lesson" in page.text and 'href="/lessons/convolution?lang=en"' in page.text
    api = client.get(f"/api/lessons/{slug}")
    assert api.status_code == 404 and isinstance(api.json()["detail"], str)


@pytest.mark.parametrize(
    "path",
    ["/lessons/..", "/lessons/%2e%2e%2fapp%2fsettings.py", "/api/lessons/..%2f..%2fpyproject.toml"],
)
def test_traversal_reaches_nothing(path):
    response = client.get(path)
    assert response.status_code in (200, 404)  # the client folds "..": at most the home page
    assert "pydantic" not in response.text and "[project]" not in response.text


def test_slugs_are_looked_up_never_used_as_paths():
    assert lesson_by_slug("../app/settings") is None
    assert lesson_by_slug("convolution/../pooling") is None
    assert lesson_by_slug("pooling") is LESSONS[6]


@pytest.mark.parametrize("lang", LANGUAGES)
def test_api_lists_and_serves_lessons_in_the_requested_language(lang):
    index = client.get("/api/lessons", params={"lang": lang}).json()
    assert index["lang"] == lang
    assert [item["slug"] for item in index["lessons"]] == SLUGS
    assert index["lessons"][0]["title"] == messages(lang)["lesson.convolution"]
    lesson = client.get("/api/lessons/padding-stride", params={"lang": lang}).json()
    assert lesson["number"] == 3 and lesson["count"] == len(LESSONS)
    question = next(q for q in lesson["questions"] if q["id"] == "cs231n")
    values = {a["label"]: a for a in question["answers"]}
    assert values["output_size"]["exact"] == [32, 32, 10]
    assert values["params"]["exact"] == 760 and values["params"]["value"] == "760"
    assert values["params"]["label_text"] == messages(lang)["lessons.answer.params"]
    assert "32" in question["text"] and "{" not in question["text"]
    assert (
        lesson["explorer"]["url"].startswith("/conv?")
        and "embed=1" in lesson["explorer"]["embed_url"]
    )


def test_numbers_read_the_same_way_everywhere():
    assert num(50348032) == "50,348,032"
    assert num(0.25) == "0.25" and num(1234.56) == "1,235" and num(1230.0) == "1,230"
    assert num(-0.341, 3) == "−0.341"
    assert num(9.5367431640625e-07, 3) == "9.54×10⁻⁷"


# --- every computed answer against torch --------------------------------------------------------


def conv_check(
    answer_set, size, channels, filters, kernel, stride=1, padding=0, dilation=1, bias=True
):
    layer = nn.Conv2d(channels, filters, kernel, stride, padding, dilation, bias=bias)
    out = layer(torch.zeros(1, channels, size, size))
    assert answer_set["output_size"].exact == (out.shape[2], out.shape[3], out.shape[1])
    assert answer_set["params"].exact == sum(p.numel() for p in layer.parameters())


@pytest.mark.parametrize(
    ("slug", "question"),
    [
        ("edge-filters", "rgb_params"),
        ("padding-stride", "cs231n"),
        ("padding-stride", "alexnet"),
        ("dilation", "output"),
        ("channels-params", "conv"),
    ],
)
def test_conv_layer_answers(slug, question):
    conv_check(answers(slug, question), **QUESTIONS[(slug, question)].params)


def test_output_size_and_macs():
    params = QUESTIONS[("convolution", "output")].params
    result = answers("convolution", "output")
    out = F.conv2d(
        torch.zeros(1, 1, params["size"], params["size"]),
        torch.zeros(1, 1, params["kernel"], params["kernel"]),
    )
    assert result["output_size"].exact == (out.shape[2], out.shape[3], 1)
    assert result["macs"].exact == out.numel() * params["kernel"] ** 2


def test_one_window_times_a_kernel():
    params = QUESTIONS[("convolution", "dot")].params
    window = torch.tensor(params["window"], dtype=torch.float64)[None, None]
    kernel = torch.tensor(params["kernel"], dtype=torch.float64)[None, None]
    assert answers("convolution", "dot")["value"].exact == F.conv2d(window, kernel).item()


def test_step_edge_response():
    params = QUESTIONS[("edge-filters", "step_edge")].params
    picture = torch.zeros(1, 1, params["size"], params["size"], dtype=torch.float64)
    picture[..., : params["bright"]] = 1  # the picture as the question describes it
    kernel = torch.tensor([[1.0, 0, -1]] * 3, dtype=torch.float64)[None, None]
    row = F.conv2d(picture, kernel)[0, 0, 0].tolist()
    assert answers("edge-filters", "step_edge")["output_row"].exact == tuple(row)


def test_same_padding_split():
    params = QUESTIONS[("padding-stride", "same")].params
    result = answers("padding-stride", "same")
    x = torch.randn(1, 1, 9, 9, dtype=torch.float64)
    for label, k, d in (
        ("padding_plain", params["kernel"], 1),
        ("padding_dilated", params["dilated_kernel"], params["dilation"]),
    ):
        w = torch.randn(1, 1, k, k, dtype=torch.float64)
        before, after = result[label].exact
        padded = F.pad(x, (before, after, before, after))
        same = F.conv2d(x, w, padding="same", dilation=d)
        assert same.shape == x.shape
        assert torch.allclose(F.conv2d(padded, w, dilation=d), same)


def gradient_support(model: nn.Module, size: int, unit: tuple[int, int] | None = None):
    """Rows of the input the centre unit (or `unit`) depends on: a gradient-based field."""
    x = torch.ones(1, 1, size, size, requires_grad=True)
    out = model(x)
    y, x_ = unit or (out.shape[2] // 2, out.shape[3] // 2)
    out[0, 0, y, x_].backward()
    rows = torch.nonzero(x.grad[0, 0].abs().sum(1)).flatten()
    cols = torch.nonzero(x.grad[0, 0].abs().sum(0)).flatten()
    return int(rows[-1] - rows[0] + 1), int(cols[0])


def ones_stack(layers: list[nn.Module]) -> nn.Module:
    model = nn.Sequential(*layers)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.Conv2d):
                module.weight.fill_(1.0)
    return model


def test_dilated_stack_receptive_field():
    params = QUESTIONS[("dilation", "stack")].params
    k = params["kernel"]
    model = ones_stack(
        [
            nn.Conv2d(1, 1, k, dilation=d, padding=d * (k // 2), bias=False)
            for d in params["dilations"]
        ]
    )
    size, _ = gradient_support(model, 64)
    assert answers("dilation", "stack")["receptive_field"].exact == size


def test_dilated_kernel_against_a_large_one():
    params = QUESTIONS[("dilation", "params")].params
    c, k, d = params["channels"], params["kernel"], params["dilation"]
    result = answers("dilation", "params")
    dilated = nn.Conv2d(c, c, k, dilation=d)
    span = d * (k - 1) + 1
    large = nn.Conv2d(c, c, span)
    assert result["params_dilated"].exact == sum(p.numel() for p in dilated.parameters())
    assert result["params_large"].exact == sum(p.numel() for p in large.parameters())


def test_convolution_against_a_fully_connected_layer():
    params = QUESTIONS[("channels-params", "dense")].params
    s, c, o, k = params["size"], params["channels"], params["filters"], params["kernel"]
    result = answers("channels-params", "dense")
    with torch.device("meta"):
        dense = nn.Linear(c * s * s, o * s * s)
    conv = nn.Conv2d(c, o, k, padding=k // 2)
    dense_params = sum(p.numel() for p in dense.parameters())
    conv_params = sum(p.numel() for p in conv.parameters())
    assert result["params_dense"].exact == dense_params
    assert result["params_conv"].exact == conv_params
    assert result["dense_over_conv"].exact == pytest.approx(dense_params / conv_params)


def test_transposed_convolution_size():
    p = QUESTIONS[("transposed", "upsample")].params
    layer = nn.ConvTranspose2d(1, 1, p["kernel"], p["stride"], p["padding"], p["output_padding"])
    out = layer(torch.zeros(1, 1, p["size"], p["size"]))
    answer = answers("transposed", "upsample")["output_size"]
    assert answer.exact == (*out.shape[2:], 1)
    assert answer.value == f"{out.shape[2]}×{out.shape[3]}×1"  # H×W×C, as its label says
    # the formula lesson "transposed" teaches, then its numbers
    numbers = (f"({p['size']} − 1)·{p['stride']} − 2·{p['padding']} + 1·({p['kernel']} − 1)"
               f" + {p['output_padding']} + 1 = {out.shape[2]}")  # fmt: skip
    taught = "(n − 1)·s − 2p + d·(k − 1) + output_padding + 1"
    assert answer.work == (f"H_out = {taught} = {numbers}", f"W_out = {taught} = {numbers}")


def test_autoencoder_code_and_parameters():
    model = build_model("autoencoder")
    shapes = []
    for module in model.modules():
        if isinstance(module, nn.Conv2d | nn.ConvTranspose2d):
            module.register_forward_hook(lambda m, i, o: shapes.append(tuple(o.shape[1:])))
    model(torch.zeros(1, 1, 28, 28))
    code = min(shapes, key=lambda s: s[1] * s[2])
    result = answers("transposed", "autoencoder")
    assert result["code_size"].exact == (code[1], code[2], code[0])
    assert result["params"].exact == sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("question", ["shape", "overlap"])
def test_pooling_shape(question):
    p = QUESTIONS[("pooling", question)].params
    x = torch.zeros(1, p["channels"], p["size"], p["size"])
    out = F.max_pool2d(x, p["kernel"], p["stride"])
    result = answers("pooling", question)
    assert result["output_size"].exact == (out.shape[2], out.shape[3], out.shape[1])
    assert result["values_kept"].exact == pytest.approx(out.numel() / x.numel())


def test_pooled_values():
    p = QUESTIONS[("pooling", "values")].params
    x = torch.tensor(p["values"], dtype=torch.float64)[None, None]
    result = answers("pooling", "values")
    for label, pool in (("max_pool", F.max_pool2d), ("avg_pool", F.avg_pool2d)):
        assert result[label].exact == tuple(map(tuple, pool(x, p["kernel"])[0, 0].tolist()))


def test_sigmoid_slope_and_its_product():
    depth = QUESTIONS[("activations", "slope")].params["depth"]
    x = torch.linspace(-6, 6, 1201, dtype=torch.float64, requires_grad=True)
    (slope,) = torch.autograd.grad(torch.sigmoid(x).sum(), x)
    result = answers("activations", "slope")
    assert result["max_slope"].exact == pytest.approx(slope.max().item())
    assert result["chain_bound"].exact == pytest.approx(slope.max().item() ** depth)


def test_measured_vanishing_ratios():
    p = QUESTIONS[("activations", "measured")].params
    result = answers("activations", "measured")
    for activation in p["activations"]:
        report = vanishing_gradients(activation, p["depth"], init=p["init"], seed=p["seed"])
        first, last = report.layers[0].grad_norm, report.layers[p["depth"] - 1].grad_norm
        assert result[f"ratio_{activation}"].exact == pytest.approx(first / last)
    assert result["ratio_sigmoid"].exact < 1e-3 < 0.1 < result["ratio_relu"].exact < 10


def test_softmax_cross_entropy_and_gradient():
    p = QUESTIONS[("softmax-loss", "softmax")].params
    z = torch.tensor(p["logits"], dtype=torch.float64, requires_grad=True)
    loss = F.cross_entropy(z[None], torch.tensor([p["target"]]))
    (grad,) = torch.autograd.grad(loss, z)
    result = answers("softmax-loss", "softmax")
    assert result["probabilities"].exact == pytest.approx(torch.softmax(z, 0).tolist())
    assert result["loss"].exact == pytest.approx(loss.item())
    assert result["gradient"].exact == pytest.approx(grad.tolist())


def test_focal_against_cross_entropy():
    p = QUESTIONS[("softmax-loss", "focal")].params
    result = answers("softmax-loss", "focal")
    for label, p_t in (("ce_over_focal_easy", p["easy"]), ("ce_over_focal_hard", p["hard"])):
        logits = torch.log(torch.tensor([[p_t, 1 - p_t]], dtype=torch.float64))
        ce = F.cross_entropy(logits, torch.tensor([0]))
        focal = (1 - p_t) ** p["gamma"] * ce
        assert result[label].exact == pytest.approx((ce / focal).item())


def macs(model: nn.Module, shape: tuple[int, ...]) -> int:
    """Multiply-accumulates of conv and linear layers, counted from torch's own output shapes."""
    total = 0

    def count(module, inputs, output):
        nonlocal total
        if isinstance(module, nn.Conv2d):
            per_output = module.in_channels // module.groups * math.prod(module.kernel_size)
            total += output.numel() * per_output
        elif isinstance(module, nn.Linear):
            total += output.numel() * module.in_features

    for module in model.modules():
        module.register_forward_hook(count)
    model(torch.zeros(1, *shape, device="meta"))
    return total


def params_of(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_lenet5_parameters():
    model = build_model("lenet5")
    result = answers("classic-cnns", "lenet")["params"].exact
    assert result == params_of(model) == 61_706  # LeCun et al. 1998, with C5 as a convolution


def test_vgg16_parameters_and_its_largest_layer():
    model = build_model("vgg16", device="meta")
    layers = [m for m in model.modules() if not list(m.children())]
    largest = max(layers, key=params_of)
    result = answers("classic-cnns", "vgg")
    assert result["params"].exact == params_of(model) == 138_357_544  # Simonyan & Zisserman
    assert result["largest_layer"].exact == params_of(largest)
    assert result["share"].exact == pytest.approx(params_of(largest) / params_of(model))


def test_vgg16_against_alexnet_macs():
    vgg = macs(build_model("vgg16", device="meta"), (3, 224, 224))
    alexnet = macs(build_model("alexnet", device="meta"), (3, 224, 224))
    assert answers("classic-cnns", "macs")["macs_ratio"].exact == pytest.approx(vgg / alexnet)


def test_bottleneck_and_separable_costs():
    p = QUESTIONS[("modern-cnns", "bottleneck")].params
    (h, w, c), o, k, r = p["input_shape"], p["out"], p["kernel"], p["reduce"]
    with torch.device("meta"):
        direct = nn.Conv2d(c, o, k, padding=k // 2)
        reduced = nn.Sequential(nn.Conv2d(c, r, 1), nn.Conv2d(r, o, k, padding=k // 2))
    result = answers("modern-cnns", "bottleneck")
    assert result["macs_standard"].exact == macs(direct, (c, h, w))
    assert result["macs_factorised"].exact == macs(reduced, (c, h, w))
    assert result["cost_ratio"].exact == pytest.approx(
        macs(reduced, (c, h, w)) / macs(direct, (c, h, w))
    )

    p = QUESTIONS[("modern-cnns", "separable")].params
    (h, w, c), o, k = p["input_shape"], p["out"], p["kernel"]
    with torch.device("meta"):
        standard = nn.Conv2d(c, o, k, padding=k // 2, bias=False)
        separable = nn.Sequential(
            nn.Conv2d(c, c, k, padding=k // 2, groups=c, bias=False), nn.Conv2d(c, o, 1, bias=False)
        )
    result = answers("modern-cnns", "separable")
    assert result["macs_standard"].exact == macs(standard, (c, h, w))
    assert result["macs_factorised"].exact == macs(separable, (c, h, w))
    assert result["cost_ratio"].exact == pytest.approx(1 / o + 1 / k**2, rel=1e-9)


def test_residual_block_parameters():
    p = QUESTIONS[("modern-cnns", "residual")].params
    block = build_model(p["model"], device="meta").get_submodule(p["block"])
    result = answers("modern-cnns", "residual")
    assert result["params"].exact == params_of(block)
    assert result["params_shortcut"].exact == params_of(block.downsample) == 0  # identity


def test_stacked_small_kernels():
    p = QUESTIONS[("receptive-field", "stack")].params
    k, c, n = p["kernel"], p["channels"], p["layers"]
    model = ones_stack([nn.Conv2d(1, 1, k, padding=k // 2, bias=False) for _ in range(n)])
    size, _ = gradient_support(model, 32)
    result = answers("receptive-field", "stack")
    assert result["receptive_field"].exact == size
    # the lesson's rule, each layer widens the field by (k − 1)·j (j = 1 at stride 1)
    growth = " + ".join([f"({k} − 1)·1"] * n)
    assert result["receptive_field"].work[0] == f"r = 1 + {growth} = {size}"
    assert result["params_stack"].exact == n * params_of(nn.Conv2d(c, c, k, bias=False))
    assert result["params_large"].exact == params_of(nn.Conv2d(c, c, size, bias=False))


def test_vgg16_receptive_field_by_gradient():
    """The real VGG-16 geometry (each conv narrowed to one channel, weights 1, no ReLU): the
    input rows the centre unit's gradient reaches, and how far the next unit's field moves."""
    p = QUESTIONS[("receptive-field", "vgg")].params
    features = build_model(p["model"], device="meta").features
    stop = int(p["layer"].split(".")[1])
    layers = []
    for module in list(features)[: stop + 1]:
        if isinstance(module, nn.Conv2d):
            layers.append(
                nn.Conv2d(
                    1,
                    1,
                    module.kernel_size,
                    module.stride,
                    module.padding,
                    module.dilation,
                    bias=False,
                )
            )
        elif isinstance(module, nn.MaxPool2d):
            layers.append(nn.AvgPool2d(module.kernel_size, module.stride, module.padding))
    model = ones_stack(layers)
    size, left = gradient_support(model, 320, (10, 10))
    _, next_left = gradient_support(model, 320, (10, 11))
    result = answers("receptive-field", "vgg")
    assert result["receptive_field"].exact == size
    assert result["receptive_field"].work[0] == "r_out = r_in + (k − 1)·j_in, j_out = j_in·s"
    assert result["jump"].exact == next_left - left


def test_batch_norm_parameters():
    p = QUESTIONS[("training", "batch_norm")].params
    shape = tuple(p["input_shape"])
    plain = build_classifier(p["model"], shape, p["classes"])
    normed = build_classifier(p["model"], shape, p["classes"], batch_norm=True)
    added = params_of(normed) - params_of(plain)
    norms = [m for m in normed.modules() if isinstance(m, nn.BatchNorm1d | nn.BatchNorm2d)]
    assert added == sum(2 * m.num_features for m in norms)
    assert answers("training", "batch_norm")["params_added"].exact == added


def test_learning_rate_schedules_against_torch():
    p = QUESTIONS[("training", "schedule")].params
    result = answers("training", "schedule")
    for label, make, epochs in (
        (
            "lr_step",
            lambda o: torch.optim.lr_scheduler.StepLR(o, p["step_size"], p["gamma"]),
            p["at"],
        ),
        (
            "lr_cosine",
            lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, p["epochs"]),
            p["epochs"] // 2,
        ),
    ):
        optimizer = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=p["base"])
        schedule = make(optimizer)
        for _ in range(epochs):
            optimizer.step()
            schedule.step()
        assert result[label].exact == pytest.approx(optimizer.param_groups[0]["lr"])


@pytest.mark.parametrize("question", ["head", "last_stage"])
def test_trainable_parameters_when_transferring(question):
    p = QUESTIONS[("transfer-learning", question)].params
    model = build_model(p["model"], device="meta", num_classes=p["classes"])
    learning = {"fc", *p["train"]}
    for name, parameter in model.named_parameters():
        parameter.requires_grad_(name.split(".")[0] in learning)
    trainable = sum(x.numel() for x in model.parameters() if x.requires_grad)
    result = answers("transfer-learning", question)
    assert result["params_trainable"].exact == trainable
    assert result["share"].exact == pytest.approx(trainable / params_of(model))
