import secrets

import torch
from fastapi import APIRouter, Depends
from pydantic import BaseModel

from app.deps import get_device

router = APIRouter(prefix="/api", tags=["health"])


# Which server process answered (random, per process): with several workers, a client (or a
# test) can tell them apart without learning anything about the host.
PROCESS = secrets.token_hex(6)


class Health(BaseModel):
    status: str
    device: str
    torch: str
    process: str


@router.get("/health", response_model=Health)
def health(device: torch.device = Depends(get_device)) -> Health:
    """Liveness, the compute device in use and the torch version."""
    return Health(
        status="ok", device=str(device), torch=torch.__version__.split("+")[0], process=PROCESS
    )
