package config

import (
	"net/url"
	"os"
	"path/filepath"
	"strconv"

	"github.com/handoff-proxy/handoff/pkg/accesslog"
)

// accessLog checks log.access_format, access_file and access_sample.
func (v *validator) accessLog(l Log) {
	oneOf(&v.errs, "log.access_format", l.AccessFormat, accesslog.Formats())
	if l.AccessSample < 0 || l.AccessSample > 1 {
		v.errs.add("log.access_sample", "%v is not between 0 and 1", l.AccessSample)
	}
	if l.AccessFile == "" {
		return
	}
	if !filepath.IsAbs(l.AccessFile) {
		v.errs.add("log.access_file", "%q is not an absolute path", l.AccessFile)
		return
	}
	// The file itself may not exist yet (it is created); its directory
	// must.
	if fi, err := os.Stat(filepath.Dir(l.AccessFile)); err != nil {
		v.errs.addErr("log.access_file", "directory of "+strconv.Quote(l.AccessFile), err)
	} else if !fi.IsDir() {
		v.errs.add("log.access_file", "%s is not a directory", filepath.Dir(l.AccessFile))
	}
}

// tracing checks the tracing section.
func (v *validator) tracing(t Tracing) {
	if r := t.SampleRatio; r != nil && (*r < 0 || *r > 1) {
		v.errs.add("tracing.sample_ratio", "%v is not between 0 and 1", *r)
	}
	if t.OTLPEndpoint == "" {
		return
	}
	u, err := url.Parse(t.OTLPEndpoint)
	switch {
	case err != nil:
		v.errs.add("tracing.otlp_endpoint", "%v", err)
	case u.Scheme != "http" && u.Scheme != "https" || u.Host == "":
		v.errs.add("tracing.otlp_endpoint", "%q is not an http:// or https:// URL", t.OTLPEndpoint)
	}
}
