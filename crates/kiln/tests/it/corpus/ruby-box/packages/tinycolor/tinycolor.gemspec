Gem::Specification.new do |s|
  s.name = "tinycolor"
  s.version = "0.4.2"
  s.summary = "Wraps text in ANSI colours (a corpus stand-in for a rubygems.org gem)"
  s.authors = ["kiln corpus"]
  s.files = ["lib/tinycolor.rb"]
  s.license = "MIT"
end
