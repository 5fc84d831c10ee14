"""/api/conv: shapes and traces through HTTP equal torch's layers; every refusal names its
field; no input, however malformed, produces a 500."""

import json
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import torch
import torch.nn.functional as F
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import TypeAdapter

from app.deps import settings_dep
from app.main import app
from app.schemas.conv import TraceResponse
from app.settings import Settings
from cnncore.presets import preset_kernels, sample_inputs

client = TestClient(app)
THROUGH_HTTP = settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
TOL = {"rtol": 1e-12, "atol": 1e-12}
trace_response = TypeAdapter(TraceResponse)


def _tensor(values) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float64)


def _fields(response) -> set:
    """The body fields a 422 names (FastAPI's loc: ["body", field, ...])."""
    assert response.status_code == 422, response.text
    return {item["loc"][1] for item in response.json()["detail"] if len(item["loc"]) > 1}


# --- /shape -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "layer",
    [
        {"channels": 3, "height": 32, "width": 32, "kernel_size": 5, "out_channels": 6},
        {
            "channels": 4,
            "height": 9,
            "width": 7,
            "kernel_size": [3, 2],
            "stride": [2, 1],
            "padding": [1, 0],
            "dilation": [1, 2],
            "out_channels": 6,
            "groups": 2,
            "bias": False,
        },
        {
            "channels": 2,
            "height": 6,
            "width": 5,
            "kernel_size": 4,
            "padding": "same",
            "dilation": 1,
            "out_channels": 3,
        },
        {
            "channels": 4,
            "height": 5,
            "width": 5,
            "kernel_size": 3,
            "padding": "valid",
            "groups": 4,
            "out_channels": 4,
        },
    ],
)
def test_shape_equals_conv2d(layer: dict) -> None:
    answer = client.post("/api/conv/shape", json=layer)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    module = torch.nn.Conv2d(
        layer["channels"],
        layer["out_channels"],
        layer["kernel_size"],
        layer.get("stride", 1),
        layer.get("padding", 0),
        layer.get("dilation", 1),
        layer.get("groups", 1),
        layer.get("bias", True),
    )
    with _quiet():  # torch warns (once) that 'same' with an even kernel copies the input
        out = module(torch.zeros(1, layer["channels"], layer["height"], layer["width"]))
    assert [body["output"][k] for k in ("channels", "height", "width")] == list(out.shape[1:])
    assert body["params"] == sum(p.numel() for p in module.parameters())
    weights_per_output = module.weight.numel()
    assert body["macs"] == out.shape[2] * out.shape[3] * weights_per_output
    assert set(body["formula"]) == {"height", "width", "general", "params"}
    assert set(body["padding"]) == {"top", "bottom", "left", "right"}


@contextmanager
def _quiet() -> Iterator[None]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        yield


def test_same_padding_reports_its_sides() -> None:
    answer = client.post(
        "/api/conv/shape", json={"height": 6, "width": 6, "kernel_size": 4, "padding": "same"}
    ).json()
    assert answer["padding"] == {"top": 1, "bottom": 2, "left": 1, "right": 2}
    assert answer["formula"]["height"] == "H_out = ⌊(6 + 1 + 2 − 1·(4 − 1) − 1) / 1⌋ + 1 = 6"


def test_shape_of_a_transposed_convolution() -> None:
    layer = {
        "channels": 2,
        "height": 4,
        "width": 3,
        "kernel_size": 3,
        "stride": 2,
        "padding": 1,
        "output_padding": [1, 0],
        "out_channels": 4,
        "groups": 2,
        "transposed": True,
    }
    body = client.post("/api/conv/shape", json=layer).json()
    module = torch.nn.ConvTranspose2d(2, 4, 3, 2, 1, (1, 0), groups=2)
    out = module(torch.zeros(1, 2, 4, 3))
    assert [body["output"][k] for k in ("channels", "height", "width")] == list(out.shape[1:])
    assert body["params"] == sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize(
    ("layer", "field"),
    [
        ({"height": 2, "width": 2, "kernel_size": 3}, "kernel_size"),
        ({"height": 8, "width": 8, "stride": 2, "padding": "same"}, "padding"),
        ({"height": 8, "width": 8, "padding": "same", "transposed": True}, "padding"),
        ({"height": 8, "width": 8, "padding": "full"}, "padding"),
        ({"height": 0, "width": 8}, "height"),
        ({"height": 5000, "width": 8}, "height"),
        ({"height": 8, "width": -1}, "width"),
        ({"height": 8, "width": 8, "channels": 3, "groups": 2}, "groups"),
        ({"height": 8, "width": 8, "output_padding": 1}, "output_padding"),
        ({"height": 8, "width": 8, "transposed": True, "output_padding": 1}, "output_padding"),
        ({"height": 8, "width": 8, "kernel_size": [3, 3, 3]}, "kernel_size"),
        ({"height": 8, "width": 8, "stride": "two"}, "stride"),
        ({"height": 8, "width": 8, "dilation": 0}, "dilation"),
        ({"height": 8}, "width"),
    ],
)
def test_shape_refusals_name_their_field(layer: dict, field: str) -> None:
    assert field in _fields(client.post("/api/conv/shape", json=layer))


# --- /trace -----------------------------------------------------------------------------------


@st.composite
def trace_configs(draw: st.DrawFn, transposed: bool) -> dict:
    groups = draw(st.sampled_from([1, 2]))
    kernel = draw(st.integers(1, 3))
    config = {
        "groups": groups,
        "channels": groups * draw(st.integers(1, 2)),
        "out_channels": groups * draw(st.integers(1, 2)),
        "kernel": kernel,
        "stride": draw(st.sampled_from([1, 2, [2, 1]])),
        "dilation": draw(st.sampled_from([1, 2])),
        "bias": draw(st.booleans()),
        "activation": draw(st.sampled_from([None, "relu", "sigmoid", "tanh", "leaky_relu"])),
        "size": draw(st.integers(2 * kernel + 2, 8)),
        "seed": draw(st.integers(0, 2**16)),
    }
    config["padding"] = draw(st.sampled_from([0, 1, [1, 0], "valid"]))
    if not transposed and config["stride"] == 1:
        config["padding"] = draw(st.sampled_from([config["padding"], "same"]))
    config["output_padding"] = 1 if transposed and config["stride"] == 2 else 0
    return config


def _request(config: dict, transposed: bool) -> tuple[dict, torch.Tensor, torch.Tensor, list]:
    generator = torch.Generator().manual_seed(config["seed"])
    c, o, g, k = config["channels"], config["out_channels"], config["groups"], config["kernel"]
    x = torch.randn(c, config["size"], config["size"] - 1, generator=generator, dtype=torch.float64)
    shape = (c, o // g, k, k) if transposed else (o, c // g, k, k)
    w = torch.randn(*shape, generator=generator, dtype=torch.float64)
    bias = (
        torch.randn(o, generator=generator, dtype=torch.float64).tolist()
        if config["bias"]
        else None
    )
    body = {key: config[key] for key in ("stride", "padding", "dilation", "groups", "activation")}
    body.update(input=x.tolist(), kernels=w.tolist(), bias=bias, transposed=transposed)
    if transposed:
        body["output_padding"] = config["output_padding"]
    return body, x, w, bias


def _post_trace(config: dict, transposed: bool) -> tuple[dict, torch.Tensor, torch.Tensor, list]:
    body, x, w, bias = _request(config, transposed)
    answer = client.post("/api/conv/trace", json=body)
    assert answer.status_code == 200, answer.text
    data = answer.json()
    trace_response.validate_python(data)  # the answer keeps the documented contract
    return data, x, w, bias


def _activate(values: torch.Tensor, name: str | None) -> torch.Tensor:
    return values if name is None else getattr(F, name)(values)


@THROUGH_HTTP
@given(config=trace_configs(transposed=False))
def test_trace_through_the_api_equals_conv2d(config: dict) -> None:
    data, x, w, bias = _post_trace(config, transposed=False)
    b = None if bias is None else _tensor(bias)
    padding = (
        config["padding"]
        if isinstance(config["padding"], str)
        else tuple(
            config["padding"] if isinstance(config["padding"], list) else [config["padding"]] * 2
        )
    )
    with _quiet():
        expected = F.conv2d(
            x[None], w, b, _pair(config["stride"]), padding, config["dilation"], config["groups"]
        )[0]
    torch.testing.assert_close(_tensor(data["pre_activation"]), expected, **TOL)
    torch.testing.assert_close(
        _tensor(data["output"]), _activate(expected, config["activation"]), **TOL
    )
    out_channels, out_h, out_w = expected.shape
    assert [(s["out_channel"], s["y"], s["x"]) for s in data["steps"]] == [
        (o, i, j) for o in range(out_channels) for i in range(out_h) for j in range(out_w)
    ]
    pads = data["padding"]
    assert data["padding"] == data["shape"]["padding"]
    torch.testing.assert_close(
        _tensor(data["padded_input"]),
        F.pad(x, (pads["left"], pads["right"], pads["top"], pads["bottom"])),
    )
    stride_h, stride_w = _pair(config["stride"])
    height, width = x.shape[1:]
    for step in data["steps"]:
        products = _tensor(step["products"])
        o, i, j = step["out_channel"], step["y"], step["x"]
        rows, cols = step["rows"], step["cols"]
        assert rows == [
            i * stride_h - pads["top"] + a * config["dilation"] for a in range(len(rows))
        ]
        assert cols == [
            j * stride_w - pads["left"] + b * config["dilation"] for b in range(len(cols))
        ]
        assert len(rows) == len(cols) == config["kernel"]
        assert step["padded"] == [
            [not (0 <= r < height and 0 <= c < width) for c in cols] for r in rows
        ]
        window = _tensor(data["padded_input"])[step["in_channels"]][
            :, [r + pads["top"] for r in rows]
        ][:, :, [c + pads["left"] for c in cols]]
        torch.testing.assert_close(products, window * w[o], rtol=0, atol=0)
        torch.testing.assert_close(_tensor(step["channel_sums"]), products.sum((1, 2)), **TOL)
        assert step["sum"] == pytest.approx(sum(step["channel_sums"]), rel=1e-12, abs=1e-12)
        assert step["pre_activation"] == pytest.approx(step["sum"] + step["bias"], abs=1e-12)
        assert step["value"] == data["output"][o][i][j]


def _pair(value) -> tuple[int, int]:
    return tuple(value) if isinstance(value, list) else (value, value)


@THROUGH_HTTP
@given(config=trace_configs(transposed=True))
def test_trace_through_the_api_equals_conv_transpose2d(config: dict) -> None:
    data, x, w, bias = _post_trace(config, transposed=True)
    assert data["kind"] == "conv_transpose2d"
    b = None if bias is None else _tensor(bias)
    padding = 0 if config["padding"] == "valid" else _pair(config["padding"])
    expected = F.conv_transpose2d(
        x[None],
        w,
        b,
        _pair(config["stride"]),
        padding,
        config["output_padding"],
        config["groups"],
        config["dilation"],
    )[0]
    torch.testing.assert_close(_tensor(data["pre_activation"]), expected, **TOL)
    torch.testing.assert_close(
        _tensor(data["output"]), _activate(expected, config["activation"]), **TOL
    )
    assert len(data["steps"]) == expected.shape[0] * x.shape[1] * x.shape[2]
    assert data["bias"] == (bias or [0.0] * expected.shape[0])
    rebuilt = torch.zeros_like(expected) + _tensor(data["bias"])[:, None, None]
    for step in data["steps"]:
        scatter = _tensor(step["scatter"])
        torch.testing.assert_close(scatter, _tensor(step["contributions"]).sum(0), **TOL)
        for a, r in enumerate(step["rows"]):
            for c_, col in enumerate(step["cols"]):
                if not step["cropped"][a][c_]:
                    rebuilt[step["out_channel"], r, col] += scatter[a, c_]
    torch.testing.assert_close(rebuilt, expected, **TOL)


def test_a_step_written_out_by_hand() -> None:
    body = {
        "input": [[[1, 2, 3], [4, 5, 6], [7, 8, 9]]],
        "kernels": [[[[1, 0], [0, -1]]]],
        "bias": [0.5],
        "activation": "relu",
    }
    data = client.post("/api/conv/trace", json=body).json()
    first = data["steps"][0]
    assert first["rows"] == [0, 1] and first["cols"] == [0, 1]
    assert first["products"] == [[[1.0, 0.0], [0.0, -5.0]]]
    assert first["sum"] == -4.0 and first["pre_activation"] == -3.5 and first["value"] == 0.0
    assert data["output"] == [[[0.0, 0.0], [0.0, 0.0]]]
    assert data["shape"]["output"] == {"channels": 1, "height": 2, "width": 2}


def test_tiny_numbers_keep_full_precision() -> None:
    body = {"input": [[[1 / 3]]], "kernels": [[[[1e-7]]]]}
    data = client.post("/api/conv/trace", json=body).json()
    assert data["output"][0][0][0] == (1 / 3) * 1e-7


GOOD = {"input": [[[0.0] * 4] * 4], "kernels": [[[[1.0] * 3] * 3]]}


def _with(**changes) -> dict:
    return {**GOOD, **changes}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (_with(input=[[[0.0] * 65] * 2]), "input"),
        (_with(input=[[[0.0] * 3] * 3] * 17, kernels=[[[[1.0]]] * 17]), "input"),
        (_with(kernels=[[[[1.0] * 12] * 12]], input=[[[0.0] * 12] * 12]), "kernels"),
        (_with(kernels=[[[[1.0]]]] * 17), "kernels"),
        (
            _with(
                input=[[[0.0] * 4] * 4] * 2, kernels=[[[[1.0]]] * 9] * 2, groups=2, transposed=True
            ),
            "kernels",
        ),
        (_with(input=[[[0.0] * 4, [0.0] * 3]]), "input"),
        (_with(kernels=[[[[1.0] * 3] * 3], [[[1.0] * 2] * 3]]), "kernels"),
        (_with(kernels=[[[[1.0] * 3] * 3]] * 2, bias=[1.0]), "bias"),
        (_with(kernels=[[[[1.0] * 3] * 3] * 2]), "kernels"),
        (_with(input=[[[1e300] * 4] * 4]), "input"),
        (_with(activation="gelu"), "activation"),
        (_with(padding="same", stride=2), "padding"),
        (_with(padding="same", transposed=True), "padding"),
        (_with(output_padding=1), "output_padding"),
        (_with(output_padding=1, transposed=True), "output_padding"),
        (_with(stride=0), "stride"),
        (_with(stride=65), "stride"),
        (_with(dilation=[1, -1]), "dilation"),
        (_with(padding=-1), "padding"),
        (_with(groups=0), "groups"),
        (_with(groups=2), "kernels"),
        (_with(input=[[[0.0] * 2] * 2]), "kernel_size"),
        (_with(input=[]), "input"),
        (_with(input=[[]]), "input"),
        (_with(input=[[[]]]), "input"),
        (_with(kernels=[]), "kernels"),
        (_with(bias=[]), "bias"),
        (_with(input="0 1 2"), "input"),
        (_with(input=[[0.0, 1.0]]), "input"),
        (_with(input=[[[[0.0]]]]), "input"),
        (_with(kernels=[[[1.0]]]), "kernels"),
        (_with(input=[[["a", "b"]]]), "input"),
        (_with(input={"values": [1]}), "input"),
        (_with(transposed="maybe"), "transposed"),
        ({"kernels": GOOD["kernels"]}, "input"),
    ],
)
def test_trace_refusals_name_their_field(body: dict, field: str) -> None:
    assert field in _fields(client.post("/api/conv/trace", json=body))


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
def test_non_finite_numbers_are_refused(literal: str) -> None:
    raw = json.dumps(GOOD).replace("0.0", literal, 1)
    answer = client.post(
        "/api/conv/trace", content=raw, headers={"content-type": "application/json"}
    )
    assert "input" in _fields(answer)


TRACE_FIELDS = [
    "input",
    "kernels",
    "bias",
    "stride",
    "padding",
    "dilation",
    "groups",
    "activation",
    "transposed",
    "output_padding",
]
SHAPE_FIELDS = [
    "channels",
    "height",
    "width",
    "kernel_size",
    "stride",
    "padding",
    "dilation",
    "out_channels",
    "groups",
    "bias",
    "transposed",
    "output_padding",
]


@pytest.mark.parametrize(
    ("path", "field"),
    [("/api/conv/trace", f) for f in TRACE_FIELDS] + [("/api/conv/shape", f) for f in SHAPE_FIELDS],
)
def test_a_non_finite_number_in_any_field_is_named(path: str, field: str) -> None:
    # Python's JSON reader takes NaN; echoing it back in the 422 must not break the answer
    body = {**GOOD, "height": 5, "width": 5} if path.endswith("shape") else dict(GOOD)
    raw = json.dumps({**body, field: 0}).replace(f'"{field}": 0', f'"{field}": [NaN, Infinity]')
    answer = client.post(path, content=raw, headers={"content-type": "application/json"})
    assert field in _fields(answer)


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "not json",
        "[]",
        "null",
        "42",
        '{"input": ',
        '"input"',
        "[" * 5000 + "]" * 5000,
        '{"input": ' + "[" * 5000 + "]" * 5000 + "}",
    ],
)
def test_garbage_bodies_get_a_422(raw: str) -> None:
    for path in ("/api/conv/trace", "/api/conv/shape"):
        answer = client.post(path, content=raw, headers={"content-type": "application/json"})
        # 400 where the JSON reader gives up (nesting too deep), 422 for every other shape
        assert answer.status_code in (400, 422), (path, raw, answer.text)


@pytest.mark.parametrize(
    ("limit", "field", "message"),
    [
        ({"max_trace_products": 55}, "input", "limit 55"),  # GOOD needs 36 + 4 + 16 = 56
        ({"max_trace_size": 3}, "input", "at most 3"),
        ({"max_trace_kernel": 2}, "kernels", "kernel size may be at most 2"),
        ({"max_trace_channels": 0}, "input", "channels may be at most 0"),
        ({"max_trace_filters": 0}, "kernels", "filters) may be at most 0"),
    ],
)
def test_the_trace_limits_come_from_settings(limit: dict, field: str, message: str) -> None:
    app.dependency_overrides[settings_dep] = lambda: Settings(**limit)
    try:
        answer = client.post("/api/conv/trace", json=GOOD)
    finally:
        app.dependency_overrides.pop(settings_dep, None)
    assert _fields(answer) == {field}
    assert message in answer.json()["detail"][0]["msg"]
    assert client.post("/api/conv/trace", json=GOOD).status_code == 200


# --- /presets ---------------------------------------------------------------------------------


def test_presets_are_the_standard_kernels_and_small_inputs() -> None:
    answer = client.get("/api/conv/presets")
    assert answer.status_code == 200
    data = answer.json()
    kernels = {k["name"]: k["values"] for k in data["kernels"]}
    assert list(kernels) == [
        "identity",
        "vertical_edge",
        "horizontal_edge",
        "sobel_x",
        "sobel_y",
        "laplacian",
        "box_blur",
        "gaussian",
        "sharpen",
        "emboss",
    ]
    assert kernels["sobel_x"] == [[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]]
    assert kernels["sobel_y"] == [[-1, -2, -1], [0, 0, 0], [1, 2, 1]]
    assert kernels["laplacian"] == [[0, 1, 0], [1, -4, 1], [0, 1, 0]]
    assert kernels["sharpen"] == [[0, -1, 0], [-1, 5, -1], [0, -1, 0]]
    assert kernels["emboss"] == [[-2, -1, 0], [-1, 1, 1], [0, 1, 2]]
    assert kernels["box_blur"] == [[1 / 9] * 3] * 3
    outer = torch.outer(_tensor([1, 2, 1]), _tensor([1, 2, 1])) / 16
    assert kernels["gaussian"] == outer.tolist()
    assert all(
        len(values) == 3 and all(len(row) == 3 for row in values) for values in kernels.values()
    )
    inputs = {i["name"]: i for i in data["inputs"]}
    assert {"digit", "square", "cross", "rgb_patch"} <= set(inputs)
    assert inputs["rgb_patch"]["channels"] == 3
    assert _tensor(inputs["rgb_patch"]["values"]).shape == (3, 8, 8)
    assert _tensor(inputs["digit"]["values"]).shape == (1, 8, 8)
    for preset in data["inputs"]:
        values = _tensor(preset["values"])
        assert values.shape[0] == preset["channels"]
        assert values.min() >= 0 and values.max() <= 1 and values.max() > 0
        assert torch.equal(values, torch.round(values, decimals=2))
    assert [k.name for k in preset_kernels()] == list(kernels)
    assert [i.name for i in sample_inputs()] == list(inputs)


def test_the_edge_presets_find_the_step_edge() -> None:
    data = client.get("/api/conv/presets").json()
    kernel = next(k["values"] for k in data["kernels"] if k["name"] == "vertical_edge")
    image = next(i["values"] for i in data["inputs"] if i["name"] == "step_edge")
    traced = client.post("/api/conv/trace", json={"input": image, "kernels": [[kernel]]}).json()
    # Ng's example: a bright-to-dark vertical edge gives 3 in the two middle columns, 0 elsewhere
    assert traced["output"] == [[[0.0, 3.0, 3.0, 0.0]] * 4]


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=5),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=5), children, max_size=3)
    ),
    max_leaves=20,
)


@settings(max_examples=60, deadline=None)
@given(
    field=st.sampled_from(sorted(set(TRACE_FIELDS) | set(SHAPE_FIELDS))),
    value=json_values,
    path=st.sampled_from(["/api/conv/trace", "/api/conv/shape"]),
)
def test_any_value_in_any_field_is_answered_without_a_500(field, value, path) -> None:
    base = dict(GOOD) if path.endswith("trace") else {"height": 5, "width": 5}
    raw = json.dumps({**base, field: value})  # NaN and Infinity as Python's reader takes them
    answer = client.post(path, content=raw, headers={"content-type": "application/json"})
    assert answer.status_code in (200, 422), answer.text
    if answer.status_code == 422:
        assert answer.json()["detail"]
