# The image holds only the static binary: FROM scratch, so building it needs
# no registry, and nothing but chimalli runs inside. Build with `make docker`
# (it builds bin/chimalli with CGO_ENABLED=0 and the empty bin/.data first).
FROM scratch
COPY bin/chimalli /chimalli
# /data belongs to the unprivileged user, so a named volume mounted there
# inherits that owner. Keys and pins are written 0600 inside it.
COPY --chown=65532:65532 bin/.data/ /data/
USER 65532:65532
WORKDIR /data
EXPOSE 1965
ENTRYPOINT ["/chimalli"]
CMD ["run", "--listen", "0.0.0.0:1965", "--data-dir", "/data"]
