// The "Export model" menu of a finished run: its weights as ONNX, safetensors, a standalone
// PyTorch file, a model card, or all of them in a zip (GET /api/runs/{id}/export?format=…).
// Plain download links: the server makes each file once per checkpoint and keeps it.

// as the server: any ended run (app/runs/store.py FINISHED_STATUSES) that saved weights
const FINISHED = new Set(["completed", "stopped", "diverged", "stalled", "failed", "interrupted"]);

/** Show the menu for a run that has ended with weights (its record from GET /api/runs). */
export function updateExportMenu(menu, run) {
  const usable = Boolean(run && run.checkpoint && FINISHED.has(run.status));
  menu.hidden = !usable;
  if (!usable) {
    menu.open = false;
    return;
  }
  menu.dataset.run = run.id;
  for (const link of menu.querySelectorAll("a[data-format]")) {
    link.href = `/api/runs/${run.id}/export?format=${link.dataset.format}`;
    // a network converted from an uploaded ONNX file has no PyTorch source (the server says 422)
    link.closest("li").hidden = link.dataset.format === "py" && /^onnx_/.test(run.model);
  }
}
