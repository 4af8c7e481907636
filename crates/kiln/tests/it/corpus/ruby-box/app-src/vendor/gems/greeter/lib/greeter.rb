require "shouty"

module Greeter
  VERSION = "0.2.0"

  def self.greet(name)
    Shouty.shout("hello, #{name}")
  end
end
