package presencetest

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// BrowserPeers returns the chromium and node binaries and the absolute
// path of browsertestDir (admin/browsertest, which holds playwright-core)
// for a test that drives a real browser. Without PRESENCE_BROWSER=1 the
// test is skipped; with it, a missing peer fails the test, so CI cannot
// pass without the browser. PRESENCE_CHROMIUM overrides /usr/bin/chromium.
func BrowserPeers(t testing.TB, browsertestDir string) (chromium, node, dir string) {
	t.Helper()
	if os.Getenv("PRESENCE_BROWSER") != "1" {
		t.Skip("set PRESENCE_BROWSER=1 to drive chromium (install with admin/browsertest/install.sh)")
	}
	chromium = os.Getenv("PRESENCE_CHROMIUM")
	if chromium == "" {
		chromium = "/usr/bin/chromium"
	}
	if _, err := os.Stat(chromium); err != nil {
		t.Fatalf("PRESENCE_BROWSER=1 but no chromium at %s (run admin/browsertest/install.sh): %v", chromium, err)
	}
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatalf("PRESENCE_BROWSER=1 but no node: %v", err)
	}
	dir, err = filepath.Abs(browsertestDir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "playwright-core")); err != nil {
		t.Fatalf("PRESENCE_BROWSER=1 but playwright-core is not installed (run admin/browsertest/install.sh): %v", err)
	}
	return chromium, node, dir
}
