package demo

import (
	_ "embed"
	"net/http"
)

// faviconSVG is the examples' icon: one node relaying to two.
//
//go:embed favicon.svg
var faviconSVG []byte

// HandleFavicon serves the examples' icon on mux at /favicon.svg, which
// the pages link (<link rel="icon" href="/favicon.svg">), and at
// /favicon.ico, which a browser asks for on pages without a link (a plain
// text report). Without it every page logs a 404 in the browser console.
func HandleFavicon(mux *http.ServeMux) {
	icon := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "image/svg+xml")
		w.Header().Set("Cache-Control", "max-age=86400")
		w.Write(faviconSVG)
	})
	mux.Handle("GET /favicon.svg", icon)
	mux.Handle("GET /favicon.ico", icon)
}
