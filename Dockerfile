# The image holds only the static binary: FROM scratch, so building it needs
# no registry, and nothing but chimalli runs inside. Build with `make docker`
# (it builds bin/chimalli with CGO_ENABLED=0 and the empty bin/.data first).
# README.md, "Running the image", shows how to run it.
FROM scratch
# On the default PATH, so `docker exec CONTAINER chimalli ban ls` works.
COPY bin/chimalli /usr/local/bin/chimalli
# /data belongs to the unprivileged user, so a named volume mounted there
# inherits that owner. Keys and pins are written 0600 inside it.
COPY --chown=65532:65532 bin/.data/ /data/
# Every command finds the node's state in /data: `run` keeps it there, and
# `health` and `ban` (run with docker exec) find the admin socket there.
# The variable beats node.data_dir in a configuration file; set it to move
# the state. HOME gives `chimalli get` a writable known_hosts
# (/data/.config/chimalli/known_hosts); scratch has no home directory.
# cmd/node/image_e2e_test.go runs the binary with these ENV, WORKDIR and CMD.
ENV CHIMALLI_NODE__DATA_DIR=/data HOME=/data
USER 65532:65532
WORKDIR /data
EXPOSE 1965
ENTRYPOINT ["/usr/local/bin/chimalli"]
CMD ["run", "--listen", "0.0.0.0:1965"]
