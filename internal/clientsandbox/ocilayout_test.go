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
	"path/filepath"
	"testing"
)

// TestWriteOCIArchive checks the layout an importer walks: index.json
// names the manifest by ref, every blob is stored under its own digest
// with its size, the manifest's layer is the tarball as it is, and the
// config's diff ID is the digest of the uncompressed layer.
func TestWriteOCIArchive(t *testing.T) {
	dir := t.TempDir()
	layerTar := tarOf(t, "bin/true", "#!/bin/sh\n")
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(layerTar)
	zw.Close()
	layerGz := filepath.Join(dir, "rootfs.tar.gz")
	if err := os.WriteFile(layerGz, gz.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "image.tar")
	if err := WriteOCIArchive(out, layerGz, "localhost/test:1"); err != nil {
		t.Fatal(err)
	}
	files := untar(t, out)
	if string(files["oci-layout"]) != `{"imageLayoutVersion":"1.0.0"}` {
		t.Errorf("oci-layout: %q", files["oci-layout"])
	}
	var index struct{ Manifests []ociDescriptor }
	mustJSON(t, files["index.json"], &index)
	if len(index.Manifests) != 1 || index.Manifests[0].Annotations["org.opencontainers.image.ref.name"] != "localhost/test:1" {
		t.Fatalf("index.json: %s", files["index.json"])
	}
	var manifest struct {
		Config ociDescriptor
		Layers []ociDescriptor
	}
	mustJSON(t, blob(t, files, index.Manifests[0]), &manifest)
	if len(manifest.Layers) != 1 || !bytes.Equal(blob(t, files, manifest.Layers[0]), gz.Bytes()) {
		t.Fatalf("the manifest's layer is not the tarball: %+v", manifest.Layers)
	}
	var config struct {
		Rootfs struct {
			DiffIDs []string `json:"diff_ids"`
		}
	}
	mustJSON(t, blob(t, files, manifest.Config), &config)
	sum := sha256.Sum256(layerTar)
	if want := "sha256:" + hex.EncodeToString(sum[:]); len(config.Rootfs.DiffIDs) != 1 || config.Rootfs.DiffIDs[0] != want {
		t.Errorf("diff_ids %v, want [%s]", config.Rootfs.DiffIDs, want)
	}
}

// blob returns the blob d points to, after checking its digest and size.
func blob(t *testing.T, files map[string][]byte, d ociDescriptor) []byte {
	t.Helper()
	b, ok := files["blobs/sha256/"+d.Digest[len("sha256:"):]]
	if !ok {
		t.Fatalf("no blob for %s", d.Digest)
	}
	if digest(b) != d.Digest || int64(len(b)) != d.Size {
		t.Fatalf("blob %s: digest %s, size %d, want size %d", d.Digest, digest(b), len(b), d.Size)
	}
	return b
}

func tarOf(t *testing.T, name, content string) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o755, Size: int64(len(content)), Typeflag: tar.TypeReg}); err != nil {
		t.Fatal(err)
	}
	tw.Write([]byte(content))
	tw.Close()
	return buf.Bytes()
}

func untar(t *testing.T, path string) map[string][]byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	files := map[string][]byte{}
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return files
		}
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if h.Typeflag == tar.TypeReg {
			b, err := io.ReadAll(tr)
			if err != nil {
				t.Fatal(err)
			}
			files[h.Name] = b
		}
	}
}

func mustJSON(t *testing.T, b []byte, v any) {
	t.Helper()
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%v: %s", err, b)
	}
}

// TestWriteOCIImageLayersAndNames checks an image of two layers under two
// names: both names point at one manifest, whose layers are the tarballs
// in order, and whose config has the entrypoint and one diff ID per layer.
func TestWriteOCIImageLayersAndNames(t *testing.T) {
	dir := t.TempDir()
	var layers []string
	for i, name := range []string{"bin/true", "www/index.html"} {
		var gz bytes.Buffer
		zw := gzip.NewWriter(&gz)
		zw.Write(tarOf(t, name, "x"))
		zw.Close()
		p := filepath.Join(dir, fmt.Sprintf("layer%d.tar.gz", i))
		if err := os.WriteFile(p, gz.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		layers = append(layers, p)
	}
	out := filepath.Join(dir, "image.tar")
	img := Image{Refs: []string{"localhost/a:1", "localhost/b:2"}, Layers: layers, Entrypoint: []string{"/pause"}}
	if err := WriteOCIImage(out, img); err != nil {
		t.Fatal(err)
	}
	files := untar(t, out)
	var index struct{ Manifests []ociDescriptor }
	mustJSON(t, files["index.json"], &index)
	if len(index.Manifests) != 2 || index.Manifests[0].Digest != index.Manifests[1].Digest ||
		index.Manifests[1].Annotations["io.containerd.image.name"] != "localhost/b:2" {
		t.Fatalf("index.json: %s", files["index.json"])
	}
	var manifest struct {
		Config ociDescriptor
		Layers []ociDescriptor
	}
	mustJSON(t, blob(t, files, index.Manifests[0]), &manifest)
	for i, l := range manifest.Layers {
		want, _ := os.ReadFile(layers[i])
		if !bytes.Equal(blob(t, files, l), want) {
			t.Errorf("layer %d is not %s", i, layers[i])
		}
	}
	var config struct {
		Config struct{ Entrypoint []string }
		Rootfs struct {
			DiffIDs []string `json:"diff_ids"`
		}
	}
	mustJSON(t, blob(t, files, manifest.Config), &config)
	if len(manifest.Layers) != 2 || len(config.Rootfs.DiffIDs) != 2 || len(config.Config.Entrypoint) != 1 || config.Config.Entrypoint[0] != "/pause" {
		t.Errorf("manifest %+v, config %+v", manifest, config)
	}
}
