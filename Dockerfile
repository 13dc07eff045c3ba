# bindle-server on the official Node image: built in one stage (better-sqlite3 compiles from
# source), run as the unprivileged `node` user with its data in a volume.
FROM node:20-bookworm AS build
WORKDIR /app
COPY package.json package-lock.json tsconfig.json tsconfig.build.json ./
COPY schema ./schema
COPY core ./core
COPY server ./server
COPY client ./client
COPY bench ./bench
COPY scripts/esbuild-node.mjs scripts/standalone-validators-plugin.mjs scripts/bundle-server.mjs scripts/bundle-client.mjs ./scripts/
RUN npm ci --no-audit --no-fund && npm prune --omit=dev

FROM node:20-bookworm-slim
ENV NODE_ENV=production \
    BINDLE_DIRECTORY=/var/lib/bindle \
    BINDLE_IP_ADDRESS_PORT=0.0.0.0:8080
WORKDIR /app
COPY --from=build /app/package.json ./package.json
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
RUN mkdir -p /var/lib/bindle && chown node:node /var/lib/bindle
USER node
VOLUME ["/var/lib/bindle"]
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s \
  CMD node -e "fetch('http://127.0.0.1:8080/readyz').then(r => process.exit(r.ok ? 0 : 1), () => process.exit(1))"
ENTRYPOINT ["node", "dist/server/bin/launch.cjs"]
