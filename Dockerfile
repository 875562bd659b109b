# The image holds only the static binary: no registry is needed to build it
# beyond the local Go toolchain, and nothing but chimalli runs inside.
# Build the binary first: make build  (CGO_ENABLED=0, static)
FROM scratch
COPY bin/chimalli /chimalli
USER 65532:65532
WORKDIR /data
EXPOSE 1965
ENTRYPOINT ["/chimalli"]
CMD ["run", "--listen", "0.0.0.0:1965", "--data-dir", "/data"]
