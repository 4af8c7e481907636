module Shouty
  VERSION = "1.1.0"

  def self.shout(text)
    "#{text.upcase}!"
  end
end
