//go:build e2e

package e2e

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// make e2e installs Debian's chromium-headless-shell (scripts/install-chromium.sh) and
// sets it; screenshots go to ARITMA_TEST_OUTPUT (default e2e/out).
var (
	chromiumBin = os.Getenv("ARITMA_CHROMIUM")
	testOutput  = os.Getenv("ARITMA_TEST_OUTPUT")
)

// A customer consents in a real browser: headless Chromium opens the
// authorization URL, logs in and approves on the bank's pages, is sent to
// Vault's callback and sees the confirmation page (a screenshot of it goes
// to the test's output folder); then vault read on the credential returns
// the customer's token.
func TestE2E_CustomerConsentInABrowser(t *testing.T) {
	requireVault(t)
	if chromiumBin == "" {
		if os.Getenv("CI") != "" {
			t.Fatal("ARITMA_CHROMIUM is not set; run make e2e")
		}
		t.Skip("ARITMA_CHROMIUM is not set; run make e2e, which installs Chromium")
	}
	t.Parallel()
	kari := bankCustomer{"kari", randomSecret("kari-password")}
	v := startVaultDev(t)
	callback := "http://" + v.Addr + "/v1/aritma/callback"
	bank, client := consentBank(t, []string{callback}, kari)
	v.setupAccounts(t, bank, client, "authorization_code", callback)
	authURL := v.authorize(t, "kari")

	// Flags for a closed network: without the background ones Chromium keeps
	// trying to reach Google's hosts.
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromiumBin), chromedp.UserDataDir(t.TempDir()),
		chromedp.NoSandbox, chromedp.DisableGPU, chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true), chromedp.WindowSize(1000, 700))
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelAlloc()
	ctx, cancel := chromedp.NewContext(allocCtx)
	defer cancel()
	ctx, cancelTimeout := context.WithTimeout(ctx, 60*time.Second)
	defer cancelTimeout()

	err := chromedp.Do(ctx,
		chromedp.Navigate(authURL),
		chromedp.WaitVisible("#username"),
		chromedp.SendKeys("#username", kari.username),
		chromedp.SendKeys("#password", kari.password),
		chromedp.Click("#login"),
		chromedp.WaitVisible("#approve"),
		chromedp.Click("#approve"),
		chromedp.WaitVisible("#result"),
	)
	if err != nil {
		t.Fatalf("the browser's consent: %v", err)
	}
	result, err := chromedp.Run(ctx, chromedp.Text("#result"))
	if err != nil {
		t.Fatal(err)
	}
	location, err := chromedp.Run(ctx, chromedp.Location())
	if err != nil {
		t.Fatal(err)
	}
	screenshot, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatal(err)
	}
	if result != "Consent recorded" || !strings.HasPrefix(location, callback+"?") {
		t.Errorf("the browser ended on %q saying %q, want Vault's callback saying Consent recorded",
			strings.SplitN(location, "?", 2)[0], result)
	}
	dir := testOutput
	if dir == "" {
		dir = "out"
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	shot := filepath.Join(dir, "consent-recorded.png")
	if err := os.WriteFile(shot, screenshot, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot of the confirmation page: %s", shot)

	secret, out, err := v.readCredential(t, "kari")
	if err != nil {
		t.Fatalf("vault read aritma/creds/accounts/kari: %v\n%s", err, out)
	}
	if in := bank.verify(t, secret.Data["access_token"].(string)); !in.Active || in.Sub != "kari" {
		t.Errorf("the bank sees the token read after the browser's consent as %+v", in)
	}
	assertNoSecrets(t, map[string]string{"client secret": client.Secret, "kari's password": kari.password},
		append(v.logFiles(), bank.LogPath))
}
