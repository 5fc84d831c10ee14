"""Every refusal code the core raises has a Korean and an English text (`error.type.<code>` in
static/i18n/<lang>/common.json) whose placeholders the API can fill, and CNNCoreError keeps its
old two-argument form."""

import re

import pytest

from app.errors import CONTEXT_KEYS, core_error_response
from app.i18n import LANGUAGES, catalogue
from app.settings import ROOT
from cnncore.arithmetic import conv_output_size, resolve_padding
from cnncore.errors import CNNCoreError
from cnncore.losses import compute_loss

# `code="x"` and `code="x" if ... else "y"`: every literal code in a CNNCoreError(...) call.
CODE = re.compile(r'\bcode="(\w+)"(?:\s+if\s[^\n]*?\selse\s+"(\w+)")?')
PLACEHOLDER = re.compile(r"\{(\w+)\}")


def raised_codes() -> dict[str, str]:
    """code → the first module that raises it, over every module of cnncore."""
    codes: dict[str, str] = {}
    for path in sorted((ROOT / "cnncore").rglob("*.py")):
        for match in CODE.finditer(path.read_text("utf-8")):
            for code in filter(None, match.groups()):
                codes.setdefault(code, path.name)
    return codes


def test_the_scan_finds_the_codes_of_the_arithmetic():
    codes = raised_codes()
    assert {"conv_output_empty", "dilated_kernel_too_large", "same_padding_needs_stride_1",
            "probabilities_not_normalised", "image_too_many_pixels"} <= set(codes)  # fmt: skip
    assert len(codes) >= 40


@pytest.mark.parametrize("lang", LANGUAGES)
def test_every_code_raised_has_a_text_in_both_languages(lang):
    common = catalogue(lang, "common")
    missing = sorted(f"{code} ({module})" for code, module in raised_codes().items()
                     if f"error.type.{code}" not in common)  # fmt: skip
    assert missing == []
    for code in raised_codes():
        placeholders = set(PLACEHOLDER.findall(common[f"error.type.{code}"]))
        assert placeholders <= CONTEXT_KEYS, (code, placeholders - CONTEXT_KEYS)


def test_the_constructor_stays_backward_compatible():
    error = CNNCoreError("kernel too large", "kernel_size")
    assert (str(error), error.field) == ("kernel too large", "kernel_size")
    assert error.code is None and error.ctx == {}
    assert isinstance(error, ValueError) and CNNCoreError("x").field is None

    class Named(CNNCoreError):
        code = "named_refusal"

    assert Named("x").code == "named_refusal" and Named("x", code="other").code == "other"


def test_raised_errors_carry_code_and_ctx_through_the_api():
    with pytest.raises(CNNCoreError) as caught:
        conv_output_size(4, 3, stride=1, padding=0, dilation=2)
    assert caught.value.code == "dilated_kernel_too_large"
    assert caught.value.ctx["effective"] == 5 and caught.value.ctx["output"] == 0
    with pytest.raises(CNNCoreError) as caught:
        resolve_padding("same", (3, 3), stride=(3, 3))
    item = core_error_response(caught.value).body.decode()
    assert '"type":"same_padding_needs_stride_1"' in item and '"stride":"3×3"' in item
    with pytest.raises(CNNCoreError) as caught:
        compute_loss(probs=[0.2, 0.2], target=0)
    assert caught.value.code == "probabilities_not_normalised"
    assert caught.value.ctx == {"total": pytest.approx(0.4)}
