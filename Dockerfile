# syntax=docker/dockerfile:1
# One image for the gateway and the scale-down controller: each Deployment picks the entry point with
# `command` (node app/gateway/main.ts, node app/controller/main.ts). Node 24 runs the TypeScript directly
# (type stripping).

# ---- build: all dependencies, bundle the demo page into dist/web ----
FROM node:24-bookworm-slim AS build
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --no-fund --no-audit
COPY . .
RUN node scripts/build-web.ts

# ---- production dependencies only ----
FROM node:24-bookworm-slim AS deps
WORKDIR /src
COPY package.json package-lock.json ./
# --omit=peer: the constructs library's peers (cdk8s, kubernetes-models) are not the gateway's.
RUN npm ci --omit=dev --omit=peer --no-fund --no-audit && npm cache clean --force

# ---- runtime ----
FROM node:24-bookworm-slim
ENV NODE_ENV=production \
    HOST=0.0.0.0 \
    PORT=3000
WORKDIR /app
COPY --from=deps --chown=root:root /src/node_modules ./node_modules
COPY --chown=root:root package.json ./
COPY --chown=root:root app ./app
COPY --from=build --chown=root:root /src/dist/web ./dist/web
# The `node` user (uid 1000) of the base image; files stay root-owned and read-only to it.
USER 1000:1000
# 3000: clients (Socket.IO, SSE, the page); 9090: the internal port (metrics, fleet, admin), never routed.
EXPOSE 3000 9090
CMD ["node", "app/gateway/main.ts"]
