package clientsandbox

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"time"
)

// This file writes a single-layer OCI image layout, as a tar archive, from
// the busybox rootfs tarball, offline: `ctr image import` takes it. The
// gzipped rootfs is the layer blob as it is.

type ociDescriptor struct {
	MediaType   string            `json:"mediaType"`
	Digest      string            `json:"digest"`
	Size        int64             `json:"size"`
	Annotations map[string]string `json:"annotations,omitempty"`
}

// Image is what WriteOCIImage writes: an image of gzipped layer tarballs
// (the first the bottom), with its config's entrypoint, command and
// environment, under one or more names.
type Image struct {
	Refs       []string
	Layers     []string // paths of .tar.gz files
	Entrypoint []string
	Cmd        []string
	Env        []string
}

// WriteOCIArchive writes to out the image layout of the rootfs tarball
// layerGz, named ref, whose command is /bin/sh.
func WriteOCIArchive(out, layerGz, ref string) error {
	return WriteOCIImage(out, Image{
		Refs:   []string{ref},
		Layers: []string{layerGz},
		Cmd:    []string{"/bin/sh"},
	})
}

// WriteOCIImage writes to out the image layout of img: one manifest per
// name, all the same manifest.
func WriteOCIImage(out string, img Image) error {
	env := img.Env
	if env == nil {
		env = []string{"PATH=/bin:/sbin:/usr/bin"}
	}
	var layers [][]byte
	var diffIDs []string
	for _, p := range img.Layers {
		layer, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		diffID, err := gunzipDigest(layer)
		if err != nil {
			return fmt.Errorf("reading %s: %w", p, err)
		}
		layers, diffIDs = append(layers, layer), append(diffIDs, diffID)
	}
	imgConfig := map[string]any{"Env": env}
	if img.Entrypoint != nil {
		imgConfig["Entrypoint"] = img.Entrypoint
	}
	if img.Cmd != nil {
		imgConfig["Cmd"] = img.Cmd
	}
	config, err := json.Marshal(map[string]any{
		"architecture": "amd64",
		"os":           "linux",
		"config":       imgConfig,
		"rootfs":       map[string]any{"type": "layers", "diff_ids": diffIDs},
	})
	if err != nil {
		return err
	}
	var layerDescs []ociDescriptor
	for _, l := range layers {
		layerDescs = append(layerDescs, describe("application/vnd.oci.image.layer.v1.tar+gzip", l))
	}
	manifest, err := json.Marshal(map[string]any{
		"schemaVersion": 2,
		"mediaType":     "application/vnd.oci.image.manifest.v1+json",
		"config":        describe("application/vnd.oci.image.config.v1+json", config),
		"layers":        layerDescs,
	})
	if err != nil {
		return err
	}
	var manifests []ociDescriptor
	for _, ref := range img.Refs {
		m := describe("application/vnd.oci.image.manifest.v1+json", manifest)
		m.Annotations = map[string]string{
			"io.containerd.image.name":          ref,
			"org.opencontainers.image.ref.name": ref,
		}
		manifests = append(manifests, m)
	}
	index, err := json.Marshal(map[string]any{
		"schemaVersion": 2,
		"mediaType":     "application/vnd.oci.image.index.v1+json",
		"manifests":     manifests,
	})
	if err != nil {
		return err
	}
	files := []struct {
		name string
		data []byte
	}{
		{"oci-layout", []byte(`{"imageLayoutVersion":"1.0.0"}`)},
		{"index.json", index},
		{blobPath(config), config},
		{blobPath(manifest), manifest},
	}
	seen := map[string]bool{}
	for _, l := range layers {
		if p := blobPath(l); !seen[p] {
			seen[p] = true
			files = append(files, struct {
				name string
				data []byte
			}{p, l})
		}
	}
	f, err := os.Create(out)
	if err != nil {
		return err
	}
	defer f.Close()
	tw := tar.NewWriter(f)
	for _, d := range []string{"blobs/", "blobs/sha256/"} {
		if err := tw.WriteHeader(&tar.Header{Name: d, Mode: 0o755, ModTime: time.Unix(0, 0), Typeflag: tar.TypeDir}); err != nil {
			return err
		}
	}
	for _, fl := range files {
		hdr := &tar.Header{Name: fl.name, Mode: 0o644, Size: int64(len(fl.data)), ModTime: time.Unix(0, 0), Typeflag: tar.TypeReg}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if _, err := tw.Write(fl.data); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return f.Close()
}

func digest(b []byte) string {
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}

func describe(mediaType string, b []byte) ociDescriptor {
	return ociDescriptor{MediaType: mediaType, Digest: digest(b), Size: int64(len(b))}
}

func blobPath(b []byte) string {
	sum := sha256.Sum256(b)
	return "blobs/sha256/" + hex.EncodeToString(sum[:])
}

// gunzipDigest is the digest of the uncompressed layer: its diff ID.
func gunzipDigest(gz []byte) (string, error) {
	zr, err := gzip.NewReader(bytes.NewReader(gz))
	if err != nil {
		return "", err
	}
	h := sha256.New()
	if _, err := io.Copy(h, zr); err != nil {
		return "", err
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil)), nil
}
