"""The block structure in `GET /api/models/{name}/summary`: additive, and what the core reports."""

from fastapi.testclient import TestClient

from app.main import app
from cnncore.inspect import summarize_blocks

client = TestClient(app)


def test_summary_carries_the_blocks_with_their_joins():
    body = client.get("/api/models/resnet18/summary", params={"height": 64, "width": 96}).json()
    blocks = {block["name"]: block for block in body["blocks"]}
    core = {block.name: block for block in summarize_blocks("resnet18", 3, 64, 96, None)}
    assert list(blocks) == list(core)
    block = blocks["layer2.0"]
    assert block["type"] == "BasicBlock" and block["output_shape"] == [128, 8, 12]
    merge = block["merge"]
    assert merge["kind"] == "add" and merge["after"] == ["layer2.0.relu2"]
    assert merge["branches"][1] == {
        "layers": ["layer2.0.downsample.0", "layer2.0.downsample.1"],
        "output_shape": [128, 8, 12],
    }
    assert blocks["layer2"]["merge"] is None
    names = {layer["name"] for layer in body["layers"]}
    for joined in (b["merge"] for b in body["blocks"] if b["merge"]):
        parts = joined["before"] + joined["after"]
        parts += [n for branch in joined["branches"] for n in branch["layers"]]
        assert set(parts) <= names


def test_googlenet_concat_and_a_plain_model():
    body = client.get("/api/models/googlenet/summary").json()
    joins = [b["merge"] for b in body["blocks"] if b["merge"]]
    assert len(joins) == 9 and {j["kind"] for j in joins} == {"concat"}
    assert [b["output_shape"][0] for b in joins[0]["branches"]] == [64, 128, 32, 32]
    plain = client.get("/api/models/vgg16/summary").json()
    assert [b["name"] for b in plain["blocks"]] == ["features", "classifier"]
    assert all(b["merge"] is None for b in plain["blocks"])
