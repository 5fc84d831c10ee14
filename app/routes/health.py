import torch
from fastapi import APIRouter, Depends
from pydantic import BaseModel

from app.deps import get_device

router = APIRouter(prefix="/api", tags=["health"])


class Health(BaseModel):
    status: str
    device: str
    torch: str


@router.get("/health", response_model=Health)
def health(device: torch.device = Depends(get_device)) -> Health:
    """Liveness, the compute device in use and the torch version."""
    return Health(status="ok", device=str(device), torch=torch.__version__.split("+")[0])
