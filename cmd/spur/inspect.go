package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"time"

	"github.com/spur-crm/spur/pkg/config"
	"github.com/spur-crm/spur/pkg/engine"
)

// inspectHandler serves GET /customers/{id}: a customer's committed state.
func inspectHandler(eng *engine.Engine) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		v, err := eng.Inspect(r.PathValue("id"))
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		if !v.Found {
			w.WriteHeader(http.StatusNotFound)
		}
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		enc.Encode(v)
	})
}

// InspectCmd asks a running spur about a customer.
type InspectCmd struct {
	Customer InspectCustomerCmd `cmd:"" help:"Show a customer's state, armed timers and trigger history (why they did or did not get a coupon)."`
}

// InspectCustomerCmd is `spur inspect customer <id>`.
type InspectCustomerCmd struct {
	ID string `arg:"" help:"Customer (or anonymous) id."`
}

// Run fetches the customer from the running instance at --http.
func (c *InspectCustomerCmd) Run(cfg *config.Config) error {
	cl := &http.Client{Timeout: 5 * time.Second}
	resp, err := cl.Get("http://" + cfg.HTTP + "/customers/" + url.PathEscape(c.ID))
	if err != nil {
		return fmt.Errorf("ask spur at %s (is it running? set --http): %w", cfg.HTTP, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode == http.StatusNotFound {
		fmt.Fprintf(os.Stderr, "customer %q: no state (never seen on this instance's partitions)\n", c.ID)
		return nil
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("spur answered %s: %s", resp.Status, body)
	}
	_, err = os.Stdout.Write(body)
	return err
}
