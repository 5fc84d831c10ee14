# Slim CPU image serving cnnviz. GPU variant: see README ("Docker").
# Front-end libraries from the npm registry, pinned as in the Makefile (NPM_PACKAGES).
FROM node:20-slim AS vendor
ARG NPM_PACKAGES=uplot@1.6.32
WORKDIR /src
RUN npm install --prefix build/npm --no-save --no-audit --no-fund $NPM_PACKAGES

FROM python:3.11-slim AS build
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
WORKDIR /src
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
COPY pyproject.toml README.md ./
COPY cnncore cnncore
COPY app app
RUN pip install --no-cache-dir --index-url "$TORCH_INDEX" "torch==2.13.0" \
 && pip install --no-cache-dir ".[postgres]"

FROM python:3.11-slim
# PYTHONPATH: app/ and cnncore/ are imported from /srv/cnnviz (not the copy pip put in the venv),
# so they find templates/, static/ and weights/ beside them (app/settings.py ROOT, cnncore/weights.py).
ENV PATH=/opt/venv/bin:$PATH PYTHONPATH=/srv/cnnviz PYTHONDONTWRITEBYTECODE=1 CNNVIZ_HOST=0.0.0.0 CNNVIZ_DATA_DIR=/data
COPY --from=build /opt/venv /opt/venv
WORKDIR /srv/cnnviz
COPY cnncore cnncore
COPY app app
COPY templates templates
COPY static static
COPY --from=vendor /src/build/npm/node_modules build/npm/node_modules
COPY weights weights
RUN useradd --system --home /data cnnviz && mkdir -p /data && chown cnnviz /data
USER cnnviz
# runs database and checkpoints: keep them across containers with -v cnnviz-data:/data
VOLUME /data
EXPOSE 8000
HEALTHCHECK CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/api/health')"
CMD ["cnnviz", "serve", "--host", "0.0.0.0", "--port", "8000"]
