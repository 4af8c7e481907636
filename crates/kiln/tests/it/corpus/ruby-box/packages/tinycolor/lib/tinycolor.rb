module TinyColor
  VERSION = "0.4.2"

  def self.green(text)
    "\e[32m#{text}\e[0m"
  end
end
