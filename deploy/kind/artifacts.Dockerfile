# Model artifacts image: the exported .mar, SavedModel and the .mar's TorchScript file (KServe), copied into each server pod by an
# init container (see helm/servecmp/README.md, "Model artifacts"). Build context:
# build/models/<model>/ as written by `servecmp export` (torchserve/<model>.mar,
# tfserving/<model>/<version>/, kserve/<model>/<version>/model.pt). Tagged with the export digest by scripts/kind-up.sh.
FROM busybox:1.37.0
COPY torchserve/ /artifacts/torchserve/
COPY tfserving/ /artifacts/tfserving/
COPY kserve/ /artifacts/kserve/
RUN chmod -R a+rX /artifacts
USER 1000:1000
